// StreamLogs: a job's output from an offset (or the last N lines, or since a time), following it
// with `follow` until the job ends, then a last message carrying the final status. Records are
// encoded into messages as they are read (ChunkBatch: one copy per byte, recycled buffers) and
// handed to grpc-js already encoded, with room to be framed in place (./preframed-messages.ts); a
// message goes out as soon as the reader has to wait.
import { setImmediate as nextTurn } from 'node:timers/promises';

import { ChunkBatch, type OutgoingStreamLogsResponse } from '../api/stream-logs-codec';
import { REQUEST_BOUNDS } from '../api/request-bounds';
import { ValidationError } from '../errors';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { PoolPlacement } from '../fleet';
import type { Job, LogRecord } from '../worker';
import { jobToPb, streamToPb } from './convert';
import { framedInPlace } from './preframed-messages';
import type { ScanLimiter } from './scan-limiter';
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
): Promise<void> {
  const selected = selectedStreams(request.streams);
  if (request.sinceUnixMicros < 0) throw new ValidationError('since_unix_micros', 'must not be negative');
  if (request.tailLines > REQUEST_BOUNDS.maxTailLines) throw new ValidationError('tail_lines', `must be at most ${REQUEST_BOUNDS.maxTailLines}`);

  // The Job finds where a tail or `since` starts (record headers only, off this thread; a bounded
  // number of such scans at once, ./scan-limiter.ts); with a tail the first record may come from
  // part-way through.
  const records = job.logs({
    from: request.fromOffset,
    follow: request.follow,
    streams: selected,
    sinceNs: request.sinceUnixMicros > 0 ? BigInt(request.sinceUnixMicros) * 1000n : undefined,
    ...(request.tailLines > 0 ? { tailLines: request.tailLines } : {}),
    signal,
    scanSlot: () => scans.limiter.acquire(scans.identity, signal),
    reuseBuffer: true, // each record is copied into a message before the next one is read
  });
  const batch = new ChunkBatch(MAX_MESSAGE_BYTES);
  const flush = async (): Promise<void> => {
    if (batch.empty) return;
    const { bytes, release } = batch.take();
    await write(framedInPlace(bytes), release); // released once sent: grpc-js writes this very memory
  };
  const add = async (record: LogRecord): Promise<void> => {
    let data = record.data;
    const stream = streamToPb(record.stream);
    const micros = Number(record.timeNs / 1000n);
    for (;;) {
      const taken = batch.append(stream, data, micros, record.offset, record.nextOffset);
      if (taken === null) {
        await flush();
        continue;
      }
      data = data.subarray(taken);
      if (data.length === 0) return;
    }
  };
  const iterator = records[Symbol.asyncIterator]();
  try {
    let next = iterator.next();
    for (;;) {
      // Batch what is already readable; flush as soon as the follower has to wait for more.
      const result = batch.empty ? await next : await Promise.race([next, nextTurn(undefined)]);
      if (result === undefined) {
        await flush();
        continue;
      }
      if (result.done) break;
      await add(result.value); // copied out before the reader may reuse its buffer
      next = iterator.next();
    }
    await flush();
  } finally {
    await iterator.return?.(undefined);
  }
  await write({ chunks: [], finalStatus: jobToPb(job.status(), undefined, placement) });
}
