// The frame of every JobService call, around the handler's own work: the caller's identity (from its
// certificate; the interceptor already checked its role), refusing new calls once shutdown began,
// the answer or the error as a gRPC status, and the request metrics. A stream is also registered so
// shutdown can end it and written with back-pressure (the interceptor counted it against its
// identity's limit); its body may end it early with a status of its own (`end`).
import {
  status as GrpcStatus,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';

import { JobworkerError } from '../errors';
import type { Logger } from '../logger';
import { decoded } from './decoding';
import type { ServerMetrics } from './metrics';
import { peerIdentityOf, type PeerIdentity } from './peer-identity';
import { serviceError, statusOf } from './status';
import type { StreamRegistry } from './stream-registry';
import { backPressuredWriter, type StreamWrite } from './stream-writer';

export interface CallContext {
  logger: Logger;
  metrics: ServerMetrics;
  /** True once shutdown began: new calls answer UNAVAILABLE. */
  shuttingDown(): boolean;
  streams: StreamRegistry;
}

export type StreamRpc = 'StreamLogs' | 'WatchJobs';

function checkAvailable(context: CallContext): void {
  if (context.shuttingDown()) throw new JobworkerError('unavailable', 'the daemon is shutting down');
}

/** A unary handler: runs `body` and answers its result, or its error as a status. */
export function unaryCall<Req, Res>(context: CallContext, method: string, body: (request: Req, identity: PeerIdentity) => Promise<Res>) {
  const { logger, metrics } = context;
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    void (async () => {
      const identity = peerIdentityOf(call);
      checkAvailable(context);
      return body(decoded(call.request), identity);
    })().then(
      (response) => {
        metrics.requests.inc({ method, code: 'OK' });
        callback(null, response);
      },
      (error: unknown) => {
        const status = statusOf(error);
        if (status.code === GrpcStatus.INTERNAL) logger.error('request failed', { method, error: String(error) });
        metrics.requests.inc({ method, code: GrpcStatus[status.code] });
        callback(serviceError(status), null);
      },
    );
  };
}

/**
 * What a stream's body is given: `write` its messages, `signal` aborts when the client goes away or
 * the daemon shuts down, and `end(error)` ends the stream at once with that error's status, even
 * while a write waits for the client (a watcher fallen too far behind).
 */
export interface StreamControl<Res> {
  write: StreamWrite<Res>;
  signal: AbortSignal;
  end(error: Error): void;
}

/**
 * A server-streaming handler: runs `body`, which writes its messages with `control.write`, and
 * ends the stream OK when it returns, or with its error as a status (or the error given to
 * `control.end`; UNAVAILABLE on shutdown).
 */
export function streamCall<Req, Res>(
  context: CallContext,
  rpc: StreamRpc,
  body: (request: Req, identity: PeerIdentity, control: StreamControl<Res>) => Promise<void>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    void serveStream(context, rpc, call, body);
  };
}

async function serveStream<Req, Res>(
  context: CallContext,
  rpc: StreamRpc,
  call: ServerWritableStream<Req, Res>,
  body: (request: Req, identity: PeerIdentity, control: StreamControl<Res>) => Promise<void>,
): Promise<void> {
  const { logger, metrics } = context;
  const abort = new AbortController();
  const onCancel = () => abort.abort(new JobworkerError('unavailable', 'the client went away'));
  call.on('cancelled', onCancel);
  call.on('error', onCancel);
  const untrack = context.streams.track(abort);
  let expiry: { cancel(): void } | undefined;
  try {
    const identity = peerIdentityOf(call);
    checkAvailable(context);
    // A stream lasts as long as its client wants: not past the certificate it was admitted with.
    expiry = atTime(identity.notAfter, () =>
      abort.abort(new JobworkerError('unauthenticated', `the certificate of ${identity.name} expired on ${identity.notAfter.toISOString()}; reconnect with a renewed one`)),
    );
    const control: StreamControl<Res> = { write: backPressuredWriter(call, abort.signal), signal: abort.signal, end: (error) => abort.abort(error) };
    await body(decoded(call.request), identity, control);
    metrics.requests.inc({ method: rpc, code: 'OK' });
    call.end();
  } catch (error) {
    const cancelled = call.cancelled || call.destroyed;
    // Aborted: the reason is the status (shutdown: UNAVAILABLE; a body's end(error): its own).
    const status = statusOf(abort.signal.aborted ? abort.signal.reason : error);
    metrics.requests.inc({ method: rpc, code: cancelled ? 'CANCELLED' : GrpcStatus[status.code] });
    if (!cancelled) {
      if (status.code === GrpcStatus.INTERNAL) logger.error('stream failed', { rpc, error: String(error) });
      call.emit('error', serviceError(status));
    }
  } finally {
    expiry?.cancel();
    untrack();
    call.off('cancelled', onCancel);
  }
}

/** setTimeout's longest delay (~24.8 days): a longer wait is made of several. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** Calls `fire` at `when` (at once if it is past), without keeping the process alive for it. */
export function atTime(when: Date, fire: () => void): { cancel(): void } {
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const left = when.getTime() - Date.now();
    if (left <= 0) return fire();
    timer = setTimeout(arm, Math.min(left, LONGEST_TIMER_MS)).unref();
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}
