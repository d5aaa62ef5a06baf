// A job's output on our own stdout and stderr (each stream to its namesake, with back-pressure),
// optionally with a timestamp at the start of each line; or, with --json, one JSON object per
// line for each chunk and marker, then the job's status. Shared by `stream` and `run`.
import type { Writable } from 'node:stream';

import type { JobworkerClient, LogChunkView, StreamLogsRequest } from '../../client';
import { toJobReport, type JobReport } from './job-report';
import { formatBytes } from './units';

/** RFC 3339 with microseconds, UTC: 2024-05-01T10:00:00.123456Z. */
export function formatMicros(micros: number): string {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, -1)}${String(micros % 1000).padStart(3, '0')}Z`;
}

/** Inserts `prefix` at each line start in `data`; `atLineStart` says whether data begins a line. */
export function prefixLines(data: Uint8Array, prefix: string, atLineStart: boolean): { output: Buffer; atLineStart: boolean } {
  const pieces: Buffer[] = [];
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const prefixBytes = Buffer.from(prefix);
  let start = 0;
  let lineStart = atLineStart;
  while (start < bytes.length) {
    if (lineStart) pieces.push(prefixBytes);
    const newline = bytes.indexOf(10, start);
    if (newline < 0) {
      pieces.push(bytes.subarray(start));
      lineStart = false;
      break;
    }
    pieces.push(bytes.subarray(start, newline + 1));
    lineStart = true;
    start = newline + 1;
  }
  return { output: Buffer.concat(pieces), atLineStart: lineStart };
}

/** A marker record (jobworker's own note in the log) as a sentence. */
export function describeMarker(data: Uint8Array): string {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
  } catch {
    return `log marker: ${Buffer.from(data).toString('utf8')}`;
  }
  if (event.event === 'truncated') {
    const limit = typeof event.limitBytes === 'number' ? ` (${formatBytes(event.limitBytes)})` : '';
    // Not the job's own cap: its owner's logs together reached their quota (docs/log-format.md).
    if (event.reason === 'identity-quota') {
      return `the logs of the job's owner reached their quota${limit}, identityLimits.logBytes; later output was not kept; remove finished jobs to free their logs (job-cli remove ID)`;
    }
    return `the job's log reached its size cap${limit}; later output was not kept`;
  }
  if (event.event === 'dropped') {
    const bytes = typeof event.bytes === 'number' ? `${formatBytes(event.bytes)} of ` : '';
    const why = typeof event.error === 'string' ? ` (write error ${event.error})` : '';
    return `${bytes}the job's output could not be written to its log${why}`;
  }
  return `log marker: ${JSON.stringify(event)}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** One --json line for a chunk. `dataBase64` is there only when the bytes are not valid UTF-8. */
export function chunkJson(chunk: LogChunkView): Record<string, unknown> {
  const base = { time: formatMicros(chunk.timeUnixMicros), offset: chunk.offset, nextOffset: chunk.nextOffset };
  if (chunk.stream === 'marker') {
    let event: unknown;
    try {
      event = JSON.parse(Buffer.from(chunk.data).toString('utf8'));
    } catch {
      event = Buffer.from(chunk.data).toString('utf8');
    }
    return { type: 'marker', ...base, event };
  }
  const stream = chunk.stream === 'stderr' ? 'stderr' : 'stdout';
  try {
    return { type: 'output', stream, ...base, data: utf8.decode(chunk.data) };
  } catch {
    return { type: 'output', stream, ...base, data: Buffer.from(chunk.data).toString('utf8'), dataBase64: Buffer.from(chunk.data).toString('base64') };
  }
}

export interface LogPrinterOptions {
  stdout: Writable;
  stderr: Writable;
  json: boolean;
  timestamps: boolean;
  /** A line of our own on stderr (markers). */
  note: (text: string) => void;
}

export class LogPrinter {
  #options: LogPrinterOptions;
  #atLineStart = { stdout: true, stderr: true };
  /** Streams given a chunk's own bytes since the last written() (see handsOffData). */
  #written = new Set<Writable>();

  constructor(options: LogPrinterOptions) {
    this.#options = options;
  }

  /**
   * Whether a chunk's bytes are out of our hands once written() resolves, so the client may reuse
   * their memory for a later message. True for the process's own stdout and stderr: whether Node
   * writes them synchronously (files, terminals) or not (pipes, sockets), a write's callback comes
   * once the kernel has the bytes. Not for other streams, which may keep the very buffer they were
   * given (a PassThrough hands it on). --json and --timestamps print copies, so they always qualify.
   */
  get handsOffData(): boolean {
    const { stdout, stderr, json, timestamps } = this.#options;
    return json || timestamps || (stdout === process.stdout && stderr === process.stderr);
  }

  /** Resolves once every chunk's own bytes written so far are out of our hands (or their stream is gone). */
  async written(): Promise<void> {
    const streams = [...this.#written];
    this.#written.clear();
    await Promise.all(streams.map(handedOff));
  }

  async chunk(chunk: LogChunkView): Promise<void> {
    const { stdout, stderr, json, timestamps } = this.#options;
    if (json) return write(stdout, `${JSON.stringify(chunkJson(chunk))}\n`);
    if (chunk.stream === 'marker') {
      this.#options.note(describeMarker(chunk.data));
      return;
    }
    const name = chunk.stream === 'stderr' ? 'stderr' : 'stdout';
    const target = name === 'stderr' ? stderr : stdout;
    if (!timestamps) {
      this.#written.add(target);
      return write(target, chunk.data);
    }
    const { output, atLineStart } = prefixLines(chunk.data, `${formatMicros(chunk.timeUnixMicros)} `, this.#atLineStart[name]);
    this.#atLineStart[name] = atLineStart;
    return write(target, output);
  }

  /** With --json, a last line with the job's status. */
  async status(job: JobReport): Promise<void> {
    if (this.#options.json) await write(this.#options.stdout, `${JSON.stringify({ type: 'status', job })}\n`);
  }
}

/**
 * Writes, waiting for 'drain' when the stream's buffer is full (a slow reader slows the stream
 * down). Once the stream is closed or failed (EPIPE: our reader went away), output is dropped; the
 * command learns of it from the stream's 'error' event.
 */
async function write(stream: Writable, data: Uint8Array | string): Promise<void> {
  if (data.length === 0 || stream.destroyed || stream.writableEnded) return;
  if (stream.write(data)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS: a Writable calls
 * back its writes in order, so the callback of an empty one comes after all of theirs (at once, with
 * an error, for a stream destroyed or ended). A stream destroyed with a write still out may never
 * call back: its close ends the wait.
 */
export function handedOff(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('close', done);
      resolve();
    };
    stream.once('close', done);
    stream.write('', done);
  });
}

/**
 * Prints a job's output as it streams; resolves with the job's status from the stream's last
 * message (null if the stream was cancelled before that).
 */
export async function printLogs(
  client: JobworkerClient,
  request: StreamLogsRequest,
  printer: LogPrinter,
  signal?: AbortSignal,
): Promise<JobReport | null> {
  let final: JobReport | null = null;
  // When the printer's output takes its bytes out of our hands, the client may write each message
  // into memory it used before: at hundreds of MB/s a fresh buffer per message is most of our CPU.
  const reuseBuffers = printer.handsOffData;
  try {
    for await (const message of client.streamLogs(request, signal, { reuseBuffers })) {
      for (const chunk of message.chunks) await printer.chunk(chunk);
      // Before the next message, which may overwrite this one's memory.
      if (reuseBuffers) await printer.written();
      if (message.finalStatus !== null) final = toJobReport(message.finalStatus);
    }
  } catch (error) {
    if (signal?.aborted === true) return final; // we cancelled it
    throw error;
  }
  return final;
}
