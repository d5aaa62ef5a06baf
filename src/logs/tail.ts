// Where to start reading a log so that the last N lines of the selected streams come out (`tail -n
// N`), and/or nothing captured before a time (`--since`). One forward pass over the record HEADERS
// only (payloads are skipped, not read, where records are big; small records are read in blocks)
// remembers the last records' positions in a bounded ring and the first record at or after the
// time; a backward pass over the last payloads counts newlines.
import type { FileHandle } from 'node:fs/promises';

import { ValidationError } from '../errors';
import { CorruptLogError, FILE_HEADER_SIZE, RECORD_HEADER_SIZE, decodeRecordHeader, type StreamName } from './format';
import { openLog } from './reader';

export interface StartQuery {
  /** A record boundary to start at or after (default: the first record). */
  from?: number;
  /** The committed size: nothing at or after it is looked at. */
  until: number;
  /** The last this many lines of the selected streams. */
  tailLines?: number;
  /** Nothing captured before this time (nanoseconds since the epoch). */
  sinceNs?: bigint;
  /** The streams whose lines count (default both). */
  streams?: readonly ('stdout' | 'stderr')[];
}

export interface LogStart {
  /** Offset of the first record to deliver. */
  from: number;
  /** Bytes of that record's payload before the first line (tail only). */
  skip: number;
}

/** Records remembered by the forward pass; tails needing more records start at the oldest one. */
const RING = 1 << 18;
const NEWLINE = 0x0a;
/** Block reads grow while records are small (headers close together) and shrink where they are big. */
const MIN_BLOCK = 4096;
const MAX_BLOCK = 256 << 10;

interface HeaderWalk {
  /** Offsets and payload lengths of the last RING records of the selected streams. */
  offsets: Float64Array;
  lengths: Uint32Array;
  count: number;
  /** The first record (any stream) captured at or after sinceNs; `until` if none. */
  sinceFrom: number;
}

export async function findStart(path: string, query: StartQuery): Promise<LogStart> {
  const from = Math.max(query.from ?? FILE_HEADER_SIZE, FILE_HEADER_SIZE);
  if ((query.tailLines === undefined && query.sinceNs === undefined) || from >= query.until) return { from, skip: 0 };
  const counted = new Set<StreamName>(query.streams ?? ['stdout', 'stderr']);
  const file = await openLog(path);
  try {
    const walk = await walkHeaders(file, from, query.until, counted, query.sinceNs);
    let start: LogStart = { from: walk.sinceFrom, skip: 0 };
    if (query.tailLines !== undefined) {
      const tail = await tailStart(file, walk, query.tailLines, query.until);
      if (tail.from > start.from || (tail.from === start.from && tail.skip > start.skip)) start = tail;
    }
    return start.from < from ? { from, skip: 0 } : start;
  } finally {
    await file.close();
  }
}

async function walkHeaders(file: FileHandle, from: number, until: number, counted: ReadonlySet<StreamName>, sinceNs: bigint | undefined): Promise<HeaderWalk> {
  const walk: HeaderWalk = { offsets: new Float64Array(RING), lengths: new Uint32Array(RING), count: 0, sinceFrom: sinceNs === undefined ? from : until };
  let block = Buffer.allocUnsafe(MAX_BLOCK);
  let blockStart = 0;
  let blockEnd = 0; // block holds file bytes [blockStart, blockEnd)
  let size = MIN_BLOCK;
  let offset = from;
  while (offset + RECORD_HEADER_SIZE <= until) {
    if (offset < blockStart || offset + RECORD_HEADER_SIZE > blockEnd) {
      // The next header is outside what was read: a big record was skipped (read a little), or the
      // block is used up by small records (read more next time).
      const usedUp = blockEnd > blockStart && offset >= blockStart && offset <= blockEnd;
      size = usedUp ? Math.min(size * 2, MAX_BLOCK) : MIN_BLOCK;
      const want = Math.min(size, until - offset);
      if (block.length < want) block = Buffer.allocUnsafe(want);
      const { bytesRead } = await file.read(block, 0, want, offset);
      blockStart = offset;
      blockEnd = offset + bytesRead;
      if (bytesRead < RECORD_HEADER_SIZE) break;
    }
    let header;
    try {
      header = decodeRecordHeader(block, offset - blockStart, offset);
    } catch (error) {
      if (error instanceof CorruptLogError && offset === from && from > FILE_HEADER_SIZE) throw new ValidationError('from', `offset ${from} is not the start of a record`);
      throw error;
    }
    const next = offset + RECORD_HEADER_SIZE + header.length;
    if (next > until) break;
    if (sinceNs !== undefined && walk.sinceFrom === until && header.timeNs >= sinceNs) walk.sinceFrom = offset;
    if (counted.has(header.stream)) {
      walk.offsets[walk.count % RING] = offset;
      walk.lengths[walk.count % RING] = header.length;
      walk.count++;
    }
    offset = next;
  }
  return walk;
}

/** Backward over the last records' payloads: where the last `lines` lines begin. */
async function tailStart(file: FileHandle, walk: HeaderWalk, lines: number, until: number): Promise<LogStart> {
  const { offsets, lengths, count } = walk;
  if (count === 0 || lines <= 0) return { from: until, skip: 0 };
  const oldest = Math.max(0, count - RING);
  let newlines = 0;
  let last = true; // a newline ending the whole output does not begin another line
  let data = Buffer.allocUnsafe(0);
  for (let i = count - 1; i >= oldest; i--) {
    const length = lengths[i % RING]!;
    if (data.length < length) data = Buffer.allocUnsafe(length);
    await file.read(data, 0, length, offsets[i % RING]! + RECORD_HEADER_SIZE);
    for (let p = length - 1; p >= 0; p--) {
      if (data[p] !== NEWLINE) {
        last = false;
        continue;
      }
      if (last) {
        last = false;
        continue;
      }
      if (++newlines === lines) {
        // The line starts right after this newline (possibly in the next record).
        if (p + 1 < length) return { from: offsets[i % RING]!, skip: p + 1 };
        return i + 1 < count ? { from: offsets[(i + 1) % RING]!, skip: 0 } : { from: until, skip: 0 };
      }
    }
  }
  return { from: offsets[oldest % RING]!, skip: 0 };
}
