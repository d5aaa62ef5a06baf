// Reading StreamLogs the way the scenarios check it: records reassembled from chunks (a record larger
// than one message arrives as several chunks with the same offsets), digests instead of payloads so
// a thousand followers cost little memory, and the checks "contiguous" and "same as the log".
import assert from 'node:assert/strict';
import { createHash, type Hash } from 'node:crypto';

import type { JobView, JobworkerClient, LogStreamName, StreamLogsRequest } from '../../src/client';

export interface RecordDigest {
  offset: number;
  nextOffset: number;
  stream: LogStreamName;
  length: number;
  sha1: string;
}

export interface Session {
  /** Offset asked for. */
  from: number;
  records: RecordDigest[];
  /** Digest of each stream's bytes, in order. */
  stdout: Hash;
  stderr: Hash;
  bytes: number;
  final: JobView | undefined;
  /** How the stream ended: 'end' (final status), 'detached' (we cancelled), or an error code name. */
  end: string;
}

export interface SessionOptions {
  /** Cancel the call when this returns true (checked after each message). */
  detach?: (session: Session) => boolean;
  signal?: AbortSignal;
}

export interface JobOutput {
  stdout: Buffer;
  stderr: Buffer;
  /** Marker records (cap reached, bytes dropped…) as text, in order. */
  markers: string[];
  final: JobView | undefined;
}

/** The whole output of one StreamLogs call: each stream's bytes joined, markers, the final status. */
export async function jobOutput(client: JobworkerClient, request: StreamLogsRequest): Promise<JobOutput> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const output: JobOutput = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), markers: [], final: undefined };
  for await (const message of client.streamLogs(request)) {
    for (const chunk of message.chunks) {
      if (chunk.stream === 'stdout') stdout.push(Buffer.from(chunk.data));
      else if (chunk.stream === 'stderr') stderr.push(Buffer.from(chunk.data));
      else output.markers.push(Buffer.from(chunk.data).toString());
    }
    if (message.finalStatus !== null) output.final = message.finalStatus;
  }
  output.stdout = Buffer.concat(stdout);
  output.stderr = Buffer.concat(stderr);
  return output;
}

/** Reads one StreamLogs call into digests; never throws for a stream error (see `end`). */
export async function readSession(client: JobworkerClient, request: StreamLogsRequest, options: SessionOptions = {}): Promise<Session> {
  const session: Session = { from: request.fromOffset ?? 0, records: [], stdout: createHash('sha256'), stderr: createHash('sha256'), bytes: 0, final: undefined, end: 'end' };
  let open: { digest: RecordDigest; hash: Hash } | undefined;
  const close = () => {
    if (open === undefined) return;
    open.digest.sha1 = open.hash.digest('hex');
    session.records.push(open.digest);
    open = undefined;
  };
  try {
    for await (const message of client.streamLogs(request, options.signal)) {
      for (const chunk of message.chunks) {
        if (open !== undefined && open.digest.offset !== chunk.offset) close();
        if (open === undefined) {
          open = { digest: { offset: chunk.offset, nextOffset: chunk.nextOffset, stream: chunk.stream, length: 0, sha1: '' }, hash: createHash('sha1') };
        }
        open.hash.update(chunk.data);
        open.digest.length += chunk.data.length;
        session.bytes += chunk.data.length;
        if (chunk.stream === 'stdout') session.stdout.update(chunk.data);
        else if (chunk.stream === 'stderr') session.stderr.update(chunk.data);
      }
      if (message.finalStatus !== null) session.final = message.finalStatus;
      if (options.detach?.(session) === true) {
        session.end = 'detached';
        break;
      }
    }
  } catch (error) {
    session.end = (error as { codeName?: string }).codeName ?? String(error);
  }
  // A detached session may have cut its last record short: only whole records count.
  if (open !== undefined && session.end === 'end') close();
  else if (open !== undefined && open.digest.length === open.digest.nextOffset - open.digest.offset - 24) close();
  return session;
}

/** The whole log of a finished job, record by record. */
export async function indexLog(client: JobworkerClient, jobId: string): Promise<Map<number, RecordDigest>> {
  const session = await readSession(client, { jobId });
  assert.equal(session.end, 'end', `reading the log of ${jobId}`);
  return new Map(session.records.map((r) => [r.offset, r]));
}

/**
 * No gap, no duplicate, nothing altered: the session's records follow each other from where it
 * started (each offset is the previous next_offset), and each is the log's record at that offset.
 * Returns the offset after its last record.
 */
export function checkContiguous(session: Session, log: Map<number, RecordDigest>, what: string, start = session.from < 16 ? 16 : session.from): number {
  let at = start;
  for (const record of session.records) {
    assert.equal(record.offset, at, `${what}: expected a record at ${at}, got one at ${record.offset} (gap or duplicate)`);
    const expected = log.get(record.offset);
    assert.ok(expected !== undefined, `${what}: no record at ${record.offset} in the log`);
    assert.equal(record.nextOffset, expected.nextOffset, `${what}: next_offset at ${record.offset}`);
    assert.equal(record.length, expected.length, `${what}: length at ${record.offset}`);
    assert.equal(record.sha1, expected.sha1, `${what}: content at ${record.offset}`);
    at = record.nextOffset;
  }
  return at;
}
