// Writing a server stream with back-pressure: at most MAX_MESSAGES_IN_FLIGHT messages handed to
// grpc-js and not yet flushed to HTTP/2, so a client that stops reading costs the daemon its
// receive window plus these few messages, and never slows the job or other clients (docs/api.md).
import { WakeUp } from './wake-up';

/** Messages of one stream handed to grpc-js and not yet flushed: the memory a slow client costs. */
export const MAX_MESSAGES_IN_FLIGHT = 4;

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
  const flushed = new WakeUp();
  return async (message, sent) => {
    while (inFlight >= MAX_MESSAGES_IN_FLIGHT) {
      signal.throwIfAborted();
      await flushed.wait(signal);
    }
    signal.throwIfAborted();
    inFlight++;
    sink.write(message, () => {
      sent?.();
      inFlight--;
      flushed.wake();
    });
  };
}
