// A job's output from the daemon (StreamLogs, with the user's credentials) to the page, as binary
// WebSocket frames: one per chunk, each a whole record of the log whose nextOffset the page may
// resume from. The page acknowledges what it has shown; at most LOG_WINDOW_BYTES go unacknowledged,
// and the relay reads no further from the daemon until the page catches up — so a slow browser
// holds the daemon's stream back (HTTP/2 flow control) instead of filling this process's memory.
import type { JobworkerClient, StreamLogsRequest } from '../../client';
import { encodeFrameHeader, LOG_WINDOW_BYTES, type FrameKind, type FrameStream } from './protocol';
import { toUiJob } from './ui-job';

/** Sends one binary message; resolves once it is handed to the socket. */
export type SendFrame = (header: Uint8Array, data: Uint8Array) => Promise<void>;

export class LogRelay {
  readonly #abort = new AbortController();
  #unacknowledged = 0;
  #credit: (() => void) | undefined;

  constructor(
    readonly sub: number,
    private readonly send: SendFrame,
  ) {}

  /** The page has shown `bytes` more. */
  ack(bytes: number): void {
    this.#unacknowledged = Math.max(0, this.#unacknowledged - bytes);
    if (this.#unacknowledged < LOG_WINDOW_BYTES) this.#credit?.();
  }

  cancel(): void {
    this.#abort.abort();
    this.#credit?.();
  }

  /** Relays until the output ends (then an 'end' frame), the page cancels, or the call fails (thrown). */
  async run(client: JobworkerClient, request: StreamLogsRequest): Promise<void> {
    const signal = this.#abort.signal;
    for await (const message of client.streamLogs(request, signal)) {
      for (const chunk of message.chunks) {
        while (this.#unacknowledged >= LOG_WINDOW_BYTES && !signal.aborted) await new Promise<void>((resolve) => (this.#credit = resolve));
        if (signal.aborted) return;
        this.#unacknowledged += chunk.data.length;
        await this.#frame('chunk', chunk.stream, chunk.offset, chunk.nextOffset, chunk.timeUnixMicros, chunk.data);
      }
      if (message.finalStatus !== null) {
        const job = new TextEncoder().encode(JSON.stringify(toUiJob(message.finalStatus)));
        const end = message.finalStatus.log.sizeBytes;
        await this.#frame('end', 'stdout', end, end, 0, job);
        return;
      }
    }
  }

  #frame(kind: FrameKind, stream: FrameStream, offset: number, nextOffset: number, timeUnixMicros: number, data: Uint8Array): Promise<void> {
    return this.send(encodeFrameHeader({ kind, sub: this.sub, stream, offset, nextOffset, timeUnixMicros }), data);
  }
}
