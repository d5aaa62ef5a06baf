// StreamLogs: a job's output from an offset (or the last N lines, or since a time), following it
// with `follow` until the job ends, then a last message carrying the final status. Records are
// encoded into messages as they are read (ChunkBatch: one copy per byte, recycled buffers) and
// handed to grpc-js already encoded, with room to be framed in place (./preframed-messages.ts); a
// message goes out as soon as the reader has to wait. Followers of one job at the same place send
// the same encoded messages (./shared-log-messages.ts) instead of each reading and encoding them.
import { setImmediate as nextTurn } from 'node:timers/promises';

import { ChunkBatch, type OutgoingStreamLogsResponse } from '../api/stream-logs-codec';
import { REQUEST_BOUNDS } from '../api/request-bounds';
import { ValidationError } from '../errors';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { PoolPlacement } from '../fleet';
import { FILE_HEADER_SIZE, type Job, type LogHold, type LogRecord } from '../worker';
import { jobToPb, streamToPb } from './convert';
import { framedInPlace } from './preframed-messages';
import type { ScanLimiter } from './scan-limiter';
import type { LogMessageShare, SharedLogMessages } from './shared-log-messages';
import type { StreamWrite } from './stream-writer';

/** A StreamLogs message carries at most this much output. */
export const MAX_MESSAGE_BYTES = 256 << 10;

type OutputStream = 'stdout' | 'stderr';

/** The streams asked for (none: both); a marker selects nothing of its own. */
function selectedStreams(values: readonly pb.Stream[]): readonly OutputStream[] {
  const streams = new Set<OutputStream>();
  for (const [i, value] of values.entries()) {
    if (value === pb.Stream.STREAM_STDOUT) streams.add('stdout');
    else if (value === pb.Stream.STREAM_STDERR) streams.add('stderr');
    else if (value !== pb.Stream.STREAM_MARKER) throw new ValidationError(`streams[${i}]`, `${value} is not a stream`);
  }
  return streams.size === 0 ? ['stdout', 'stderr'] : [...streams];
}

/** Streams `job`'s log to the client as the request asks; the caller already checked it may see the job. */
export async function streamJobLogs(
  job: Job,
  request: pb.StreamLogsRequest,
  write: StreamWrite<OutgoingStreamLogsResponse>,
  signal: AbortSignal,
  scans: { limiter: ScanLimiter; identity: string },
  placement?: PoolPlacement,
  shared?: SharedLogMessages,
): Promise<void> {
  const selected = selectedStreams(request.streams);
  if (request.sinceUnixMicros < 0) throw new ValidationError('since_unix_micros', 'must not be negative');
  if (request.tailLines > REQUEST_BOUNDS.maxTailLines) throw new ValidationError('tail_lines', `must be at most ${REQUEST_BOUNDS.maxTailLines}`);

  // Only followers share: a stream without `follow` ends where the log ended when it began, and
  // another follower's messages may go further. A `since` filter applies to every record, so such a
  // stream's messages are its own; a tail's first message may start part-way through a record, so
  // it shares from its second on.
  const share = shared !== undefined && request.follow && request.sinceUnixMicros === 0 ? shared.join(job, [...selected].sort().join(',')) : undefined;
  let hold: LogHold | undefined;
  try {
    // A follower that sends others' messages closes its own reader meanwhile, and opens another
    // where they end: the hold keeps the log its own all along, so a removal of the job in between
    // neither recycles the file nor refuses that reader (the stream goes on to the last byte).
    if (share !== undefined) hold = await job.holdLog();
    await sendRecords(job, request, selected, write, signal, scans, share, hold);
  } finally {
    share?.leave();
    await hold?.release();
  }
  await write({ chunks: [], finalStatus: jobToPb(job.status(), undefined, placement) });
}

/** A reader of the log and the read it has in progress, if any. */
interface Cursor {
  readonly records: AsyncIterator<LogRecord>;
  /** The read in progress: one is started as soon as the last record is copied into a message. */
  next: Promise<IteratorResult<LogRecord>> | undefined;
}

/** Closes a reader, once the read it has in progress (if any) is over. */
async function closeCursor(cursor: Cursor | undefined): Promise<void> {
  if (cursor === undefined) return;
  await cursor.next?.catch(() => undefined);
  cursor.next = undefined;
  await cursor.records.return?.(undefined);
}

async function sendRecords(
  job: Job,
  request: pb.StreamLogsRequest,
  selected: readonly OutputStream[],
  write: StreamWrite<OutgoingStreamLogsResponse>,
  signal: AbortSignal,
  scans: { limiter: ScanLimiter; identity: string },
  share: LogMessageShare | undefined,
  hold: LogHold | undefined,
): Promise<void> {
  const startsMidRecord = request.tailLines > 0 || request.sinceUnixMicros > 0;
  // The Job finds where a tail or `since` starts (record headers only, off this thread; a bounded
  // number of such scans at once, ./scan-limiter.ts); with a tail the first record may come from
  // part-way through. A reader opened later (after messages another follower encoded) starts at
  // the record boundary where they ended.
  const open = (from: number | undefined): Cursor => {
    const first = from === undefined;
    const records = job.logs({
      from: first ? request.fromOffset : from,
      // Where another follower's message ended: damage found there is damage, not a bad offset.
      ...(first ? {} : { fromIsBoundary: true }),
      follow: request.follow,
      streams: selected,
      ...(first && request.sinceUnixMicros > 0 ? { sinceNs: BigInt(request.sinceUnixMicros) * 1000n } : {}),
      ...(first && request.tailLines > 0 ? { tailLines: request.tailLines } : {}),
      signal,
      scanSlot: () => scans.limiter.acquire(scans.identity, signal),
      reuseBuffer: true, // each record is copied into a message before the next one is read
      ...(hold === undefined ? {} : { hold }),
    })[Symbol.asyncIterator]();
    return { records, next: records.next() };
  };

  const batch = new ChunkBatch(MAX_MESSAGE_BYTES);
  // Where the message being built starts (a record boundary, or unknown: a tail's or since's first
  // message), and where its last record ends.
  let start: number | undefined = startsMidRecord ? undefined : Math.max(request.fromOffset, FILE_HEADER_SIZE);
  let end = 0;
  /** Whether a message has gone out: the first one is always this stream's own read. */
  let sentOne = false;
  /**
   * Sends the message built so far. `cut`: it ends at a place every follower would end it (the
   * window, a full message, the end of the log), so others may send it too; a message cut because
   * the reader had to wait is this stream's own.
   */
  const flush = async (cut: boolean): Promise<void> => {
    if (batch.empty) return;
    const { bytes, release } = batch.take();
    const sent = cut && share !== undefined && start !== undefined ? share.offer(start, end, bytes, release) : release;
    sentOne = true;
    start = end;
    await write(framedInPlace(bytes), sent); // released once sent: grpc-js writes this very memory
  };

  let cursor: Cursor | undefined = open(undefined);
  /** A record read that starts the next message; the cursor has no read in progress while one is held. */
  let held: LogRecord | undefined;
  try {
    for (;;) {
      // At a message's start, the same message another follower encoded, if it is kept. Not the
      // first message: its read reports a bad offset or a missing log as this stream's own error.
      if (share !== undefined && batch.empty && start !== undefined && sentOne) {
        const message = share.lookup(start);
        if (message !== undefined) {
          held = undefined;
          await closeCursor(cursor);
          cursor = undefined;
          start = end = message.end;
          await write(framedInPlace(message.bytes), message.sent);
          continue;
        }
      }
      let record: LogRecord;
      if (held !== undefined) {
        record = held;
        held = undefined;
      } else {
        cursor ??= open(start);
        // Batch what is already readable; flush as soon as the follower has to wait for more.
        const next = cursor.next!;
        const result = batch.empty ? await next : await Promise.race([next, nextTurn(undefined)]);
        if (result === undefined) {
          await flush(false);
          continue;
        }
        cursor.next = undefined;
        if (result.done) break;
        record = result.value;
      }
      // Messages end at fixed places of the log (a record starting past the window the message
      // started in begins the next one), so followers at different places line up again and can
      // share messages (./shared-log-messages.ts).
      if (!batch.empty && start !== undefined && record.offset >= windowEnd(start)) {
        held = record;
        await flush(true);
        continue;
      }
      if (batch.append(streamToPb(record.stream), record.data, Number(record.timeNs / 1000n), record.offset, record.nextOffset) === null) {
        held = record; // no room left: it starts the next message (an empty one takes any record)
        await flush(true);
        continue;
      }
      end = record.nextOffset;
      cursor!.next = cursor!.records.next(); // copied out before the reader may reuse its buffer
    }
    await flush(true);
  } finally {
    await closeCursor(cursor);
  }
}

/** Where the message that starts at `start` ends at the latest: the next multiple of MAX_MESSAGE_BYTES. */
function windowEnd(start: number): number {
  return (Math.floor(start / MAX_MESSAGE_BYTES) + 1) * MAX_MESSAGE_BYTES;
}
