// Writing a server stream with back-pressure: at most MAX_MESSAGES_IN_FLIGHT messages, and at most
// MAX_BYTES_IN_FLIGHT of pre-encoded ones (or one bigger message alone), handed to grpc-js and not
// yet flushed to HTTP/2, so a client that stops reading costs the daemon its receive window plus
// these few messages, and never slows the job or other clients (docs/api.md).
import { WakeUp } from './wake-up';

/** Messages of one stream handed to grpc-js and not yet flushed: the memory a slow client costs. */
export const MAX_MESSAGES_IN_FLIGHT = 4;
/**
 * Bytes of pre-encoded messages in flight: a StreamLogs message carries whole records, so one may be
 * bigger than the usual 256 KiB (a record of an old log, up to 1 MiB); such a message goes alone.
 */
export const MAX_BYTES_IN_FLIGHT = 1 << 20;

/** The part of a grpc-js server stream the writer uses. */
export interface MessageSink<M> {
  write(message: M, flushed: () => void): unknown;
}

/**
 * Writes `message` once fewer than MAX_MESSAGES_IN_FLIGHT are in flight; `sent` is called once
 * grpc-js is done with it (its buffer may then be reused). Throws the abort reason once `signal` aborts.
 */
export type StreamWrite<M> = (message: M, sent?: () => void) => Promise<void>;

export function backPressuredWriter<M>(sink: MessageSink<M>, signal: AbortSignal): StreamWrite<M> {
  let inFlight = 0;
  let bytesInFlight = 0;
  const flushed = new WakeUp();
  return async (message, sent) => {
    // Objects (status messages) are small; the log's big messages arrive encoded.
    const size = Buffer.isBuffer(message) ? message.length : 0;
    while (inFlight >= MAX_MESSAGES_IN_FLIGHT || (inFlight > 0 && bytesInFlight + size > MAX_BYTES_IN_FLIGHT)) {
      signal.throwIfAborted();
      await flushed.wait(signal);
    }
    signal.throwIfAborted();
    inFlight++;
    bytesInFlight += size;
    sink.write(message, () => {
      sent?.();
      inFlight--;
      bytesInFlight -= size;
      flushed.wake();
    });
  };
}
