// Follows a log: catches up from disk, then waits for growth, and ends exactly when the log is
// complete and its last byte delivered. Pull-based: a slow consumer just stops pulling, so nothing is
// buffered for it beyond the one read in progress (back-pressure, not buffers).
import type { FileHandle } from 'node:fs/promises';

import { ValidationError } from '../errors';
import { CorruptLogError, FILE_HEADER_SIZE, type StreamName } from './format';
import { openLog, readRecords, type LogRecord } from './reader';

/** A log that may still be growing. */
export interface LogSource {
  readonly path: string;
  /** Size of the complete records now; never decreases. */
  committed(): number;
  /** True once nothing more will ever be written. Set only after the final committed size. */
  isComplete(): boolean;
  /** Resolves once committed() > offset, or the log is complete, or `signal` aborts. */
  waitBeyond(offset: number, signal?: AbortSignal): Promise<void>;
}

export interface FollowOptions {
  /** A record boundary to start from (default: the first record). */
  from?: number;
  /** Keep waiting for new output until the log is complete (default false: stop at the current end). */
  follow?: boolean;
  /** Which streams to deliver (default both). Markers are always delivered: they explain gaps. */
  streams?: readonly ('stdout' | 'stderr')[];
  /** Skip records captured before this time (nanoseconds since the epoch). */
  sinceNs?: bigint;
  /**
   * Read into one reused buffer: each record's `data` is then valid only until the next record is
   * asked for. For consumers that copy the bytes at once (the gRPC stream).
   */
  reuseBuffer?: boolean;
  /**
   * `from` is known to be a record boundary (where an earlier read of this log ended): damage found
   * there is reported as damage, never as a bad offset of the caller's.
   */
  fromIsBoundary?: boolean;
  /** The log, opened (openLog) by the caller, who keeps it open: read from it, not from `path`. */
  file?: FileHandle;
  signal?: AbortSignal;
}

export async function* followLog(source: LogSource, options: FollowOptions = {}): AsyncGenerator<LogRecord> {
  const wanted = new Set<StreamName>([...(options.streams ?? ['stdout', 'stderr']), 'marker']);
  let offset = options.from ?? FILE_HEADER_SIZE;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new ValidationError('from', 'must be a non-negative integer');
  // 0 is "from the first record" (the request's default); 1 to 15 fall inside the file header.
  if (offset > 0 && offset < FILE_HEADER_SIZE) throw new ValidationError('from', `offset ${offset} is not the start of a record (the first is at ${FILE_HEADER_SIZE})`);
  if (offset < FILE_HEADER_SIZE) offset = FILE_HEADER_SIZE;
  if (offset > source.committed()) throw new ValidationError('from', `offset ${offset} is beyond the end of the log (${source.committed()} bytes)`);

  // Nothing to read, ever: not even the file (a log recovery found missing is recorded empty).
  if (source.isComplete() && offset >= source.committed()) return;
  const file = options.file ?? (await openLog(source.path));
  const scratch = options.reuseBuffer ? { buffer: Buffer.alloc(0) } : undefined;
  let first = true;
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      // Read `complete` before the size: a log that is complete now has its final size already.
      const complete = source.isComplete();
      const until = source.committed();
      try {
        for await (const record of readRecords(file, { from: offset, until, ...(scratch === undefined ? {} : { scratch }) })) {
          first = false;
          offset = record.nextOffset;
          if (!wanted.has(record.stream)) continue;
          if (options.sinceNs !== undefined && record.timeNs < options.sinceNs) continue;
          yield record;
        }
      } catch (error) {
        // A caller's offset that is not a record boundary is the caller's mistake; a damaged first
        // record of the log (no offset asked for) is damage, reported as such (DATA_LOSS).
        if (first && !options.fromIsBoundary && offset > FILE_HEADER_SIZE && error instanceof CorruptLogError && error.offset === offset) {
          throw new ValidationError('from', `offset ${offset} is not the start of a record`);
        }
        throw error;
      }
      // readRecords reads to `until` or throws: short of it, the next pass would read the same bytes
      // again at once, forever, without the event loop ever turning.
      if (offset < until) throw new CorruptLogError(offset, `reading stopped short of the committed end at byte ${until}`);
      if (!options.follow || (complete && offset >= until)) return;
      if (offset >= until) await source.waitBeyond(offset, options.signal);
    }
  } finally {
    if (file !== options.file) await file.close();
  }
}

/** A log that will not grow any more (a finished job's, or one read after a restart). */
export class CompleteLog implements LogSource {
  constructor(
    readonly path: string,
    readonly size: number,
  ) {}
  committed(): number {
    return this.size;
  }
  isComplete(): boolean {
    return true;
  }
  waitBeyond(): Promise<void> {
    return Promise.resolve();
  }
}
