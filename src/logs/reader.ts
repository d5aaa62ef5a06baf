// Reads a log file's records from a record boundary, in large sequential reads, never holding more
// than one read buffer (plus one oversized record) in memory.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

import { errorCode } from '../errors';
import { readCached } from '../native';
import {
  CorruptLogError,
  FILE_HEADER_SIZE,
  RECORD_HEADER_SIZE,
  checkFileHeader,
  decodeRecordHeader,
  type StreamName,
} from './format';

export interface LogRecord {
  /** Byte offset of this record in the file: a valid `from` for a later read. */
  offset: number;
  /** Offset of the record after it. */
  nextOffset: number;
  stream: StreamName;
  timeNs: bigint;
  data: Buffer;
}

export interface ReadRange {
  /** A record boundary (0 or FILE_HEADER_SIZE: the first record). */
  from?: number;
  /** Stop before this offset (the committed size); default: the file's size when reading starts. */
  until?: number;
  /**
   * Reuse this buffer for reading (it is replaced by a bigger one when needed). Then a record's
   * `data` is only valid until the next record is asked for: for consumers that copy it at once,
   * so a stream of hundreds of MB/s does not allocate (and make the GC collect) a buffer per read.
   */
  scratch?: { buffer: Buffer };
}

/** Largest single read. Reads never go past `until`, so a follower close behind a job reads little. */
const READ_SIZE = 256 << 10;

/**
 * Bytes read from the page cache on the event loop (readCached) before the reader lets other work
 * run: a reader whose consumer never waits (one that filters every record out) would otherwise read
 * a whole cached log in one turn of the loop.
 */
const CACHED_RUN_BYTES = 4 << 20;

/**
 * O_NOATIME: reading a log never writes its inode's access time, so a read served from the page
 * cache on the event loop never waits for the filesystem's journal. Only the file's owner (or
 * CAP_FOWNER) may ask for it; for anyone else the open is retried without it.
 */
const NO_ATIME = constants.O_NOATIME ?? 0;

/**
 * Opens a log and checks its header. Never through a symbolic link (O_NOFOLLOW): a link planted in
 * place of a log would serve another file's bytes; it is refused as a corrupt log.
 */
export async function openLog(path: string): Promise<FileHandle> {
  let file: FileHandle;
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW;
  try {
    file = await open(path, flags | NO_ATIME).catch((error: unknown) => {
      if (NO_ATIME === 0 || errorCode(error) !== 'EPERM') throw error;
      return open(path, flags);
    });
  } catch (error) {
    if (errorCode(error) === 'ELOOP') throw new CorruptLogError(0, `${path} is a symbolic link, not a log (not followed)`);
    throw error;
  }
  try {
    const header = Buffer.alloc(FILE_HEADER_SIZE);
    const { bytesRead } = await file.read(header, 0, FILE_HEADER_SIZE, 0);
    checkFileHeader(header.subarray(0, bytesRead));
    return file;
  } catch (error) {
    await file.close();
    throw error;
  }
}

/**
 * Yields the complete records in [from, until). Without `until` (read to the end of the file), a
 * record cut short by the end of the file (a torn tail after a crash) ends the iteration. With it,
 * `until` is a committed record boundary: a record that runs past it, or a file that ends before
 * it, is a CorruptLogError at that record (a `from` that is no boundary, or a file cut under its
 * reader), never a quiet end a follower would take for "nothing new yet".
 */
export async function* readRecords(file: FileHandle, range: ReadRange = {}): AsyncGenerator<LogRecord> {
  let offset = Math.max(range.from ?? FILE_HEADER_SIZE, FILE_HEADER_SIZE);
  const strict = range.until !== undefined;
  const until = range.until ?? (await file.stat()).size;
  const shortOf = (what: string): CorruptLogError => new CorruptLogError(offset, `${what} before the log's committed end at byte ${until}`);
  const scratch = range.scratch;
  let buf = scratch?.buffer ?? Buffer.alloc(0);
  let start = 0; // buf[start..end) holds file bytes from `offset`
  let end = 0;
  let cachedRun = 0; // bytes read from the cache since the event loop last had a turn
  while (offset < until) {
    if (end - start < RECORD_HEADER_SIZE) {
      if (!(await refill(RECORD_HEADER_SIZE))) {
        if (strict) throw shortOf(until - offset < RECORD_HEADER_SIZE ? `${until - offset} bytes, less than a record header,` : 'the file ends');
        return;
      }
    }
    const header = decodeRecordHeader(buf, start, offset);
    const size = RECORD_HEADER_SIZE + header.length;
    if (offset + size > until) {
      if (strict) throw shortOf(`a record of ${size} bytes does not end`);
      return;
    }
    if (end - start < size && !(await refill(size))) {
      if (strict) throw shortOf('the file ends');
      return;
    }
    // A view, not a copy: without a scratch buffer, refill() never writes into a buffer it has
    // handed out; with one, the consumer has promised to be done with it by the next record.
    const data = buf.subarray(start + RECORD_HEADER_SIZE, start + size);
    yield { offset, nextOffset: offset + size, stream: header.stream, timeNs: header.timeNs, data };
    start += size;
    offset += size;
  }

  // Makes at least `need` bytes available at buf[start..]; false at the end of the file.
  async function refill(need: number): Promise<boolean> {
    const have = end - start;
    // Sized to what is left to read, so a follower near the end of a log holds a small buffer.
    const left = until - offset;
    const size = Math.max(need, Math.min(READ_SIZE, left));
    if (scratch !== undefined && scratch.buffer.length >= size) {
      buf.copyWithin(0, start, end);
    } else {
      const fresh = Buffer.allocUnsafe(scratch === undefined ? size : Math.max(size, READ_SIZE));
      buf.copy(fresh, 0, start, end);
      buf = fresh;
      if (scratch !== undefined) scratch.buffer = fresh;
    }
    start = 0;
    end = have;
    while (end < need) {
      const want = Math.min(buf.length - end, until - (offset + end));
      if (want <= 0) return false;
      // From the page cache on this thread when it has the bytes (a followed log was written moments
      // ago); from the disk on the threadpool otherwise, never blocking the event loop on it.
      let bytesRead = readCached(file.fd, buf, end, want, offset + end);
      if (bytesRead === null) {
        bytesRead = (await file.read(buf, end, want, offset + end)).bytesRead;
        cachedRun = 0;
      } else if ((cachedRun += bytesRead) >= CACHED_RUN_BYTES) {
        cachedRun = 0;
        await yieldToEventLoop();
      }
      if (bytesRead === 0) return false;
      end += bytesRead;
    }
    return true;
  }
}

export { CorruptLogError };
