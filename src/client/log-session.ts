// The client's log streams, over an HTTP/2 connection of their own (issue 17). Through grpc-js a
// follower cost the client about twice the CPU of reading the same bytes off HTTP/2 itself: its
// client call holds the HTTP/2 stream paused between messages until the reader asks for the next
// one, re-buffers every piece, and delivers through an object stream; on two cores that CPU is
// taken from the daemon and the job, and one follower got ~300 MB/s where the bytes alone moved at
// ~400 (docs/benchmarks.md). Here a stream's pieces are cut into messages as they arrive
// (./grpc-frames.ts) and queued up to a bound; the server sees an ordinary gRPC call on an ordinary
// mutual-TLS connection with the same certificate, so its RBAC, limits and errors are the same.
//
// The connection opens on the first stream, serves every stream of this client, and closes with it
// or after IDLE_CLOSE_MS without streams. It holds the process open only while a stream is open,
// and while one is, a ping every KEEPALIVE_MS (answered within KEEPALIVE_TIMEOUT_MS) notices a daemon
// that went away, as the channel's keepalive does. A call ends as a grpc-js call would: the status
// from the trailers once every byte is read; a reset mapped to a status as grpc-js maps it
// (subchannel-call.ts); a connection lost before the end, UNAVAILABLE.
import * as http2 from 'node:http2';
import { isIP } from 'node:net';

import { RUNNER_ADDRESS_METADATA } from '../api/runner-redirect';
import { ClientError, StatusCode } from './client-error';
import type { ClientTlsContext } from './credentials';
import { frameMessage, GrpcMessageParser, MessageBuffers } from './grpc-frames';

/**
 * Receive window of each stream (the bytes the server may send unasked: what a stream that stops
 * reading costs the daemon, docs/api.md) and of the whole connection. 2 MiB, not 1: with 1 MiB
 * (four 256 KiB messages) the daemon waited for window updates, and a follower got ~9 % less
 * (docs/benchmarks.md, issue 17); 4 MiB gave no more.
 */
const STREAM_WINDOW_BYTES = 2 << 20;
const CONNECTION_WINDOW_BYTES = 8 << 20;
/**
 * Decoded messages a stream holds for a reader that has not taken them; past this it stops reading
 * (and so stops returning window to the server) until half of them are taken. A reader that stops
 * costs the client at most this, its window and one message.
 */
const QUEUE_HIGH_BYTES = 2 << 20;
/** What a queued message costs beyond its bytes (so that a stream of tiny messages is bounded too). */
const QUEUED_MESSAGE_OVERHEAD_BYTES = 64;
const KEEPALIVE_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
const IDLE_CLOSE_MS = 30_000;

/**
 * True if grpc-js would connect to `host` through a proxy (http_proxy.ts: `grpc_proxy`,
 * `https_proxy` or `http_proxy`, unless `no_grpc_proxy`, else `no_proxy`, lists the host), which
 * this connection cannot: then log streams go through grpc-js too. (grpc-js also matches CIDR
 * ranges there; a host only so excluded streams through grpc-js, slower but the same.)
 */
export function proxyApplies(host: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const proxy = env.grpc_proxy || env.https_proxy || env.http_proxy;
  if (!proxy) return false;
  const exceptions = (env.no_grpc_proxy || env.no_proxy || '').split(',').map((entry) => entry.trim());
  return !exceptions.includes(host);
}

/** The host of "host:port" or "[v6]:port"; null for an address only grpc-js resolves (dns:, unix:…). */
export function plainHost(address: string): string | null {
  const match = /^\[([0-9a-fA-F:.]+)\]:\d{1,5}$/.exec(address) ?? /^([A-Za-z0-9.-]+):\d{1,5}$/.exec(address);
  return match === null ? null : match[1]!;
}

export interface LogSessionOptions {
  /** "host:port" (plainHost). */
  address: string;
  tls: ClientTlsContext;
  /** Connecting (TCP and TLS) fails after this long. */
  connectTimeoutMs: number;
  maxMessageBytes: number;
}

const cancelledOnClient = () => new ClientError(StatusCode.CANCELLED, 'Cancelled on client');

/** One HTTP/2 connection and its open streams: referenced, and pinged, only while it has some. */
class Connection {
  #streams = 0;
  #keepalive: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;

  constructor(readonly session: http2.ClientHttp2Session) {
    session.unref();
    session.once('close', () => this.#stopTimers());
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }

  streamOpened(): void {
    if (this.#streams++ > 0) return;
    clearTimeout(this.#idle);
    this.session.ref();
    this.#keepalive = setInterval(() => this.#ping(), KEEPALIVE_MS);
    this.#keepalive.unref();
  }

  streamClosed(): void {
    if (--this.#streams > 0 || this.session.destroyed) return;
    this.session.unref();
    clearInterval(this.#keepalive);
    this.#idle = setTimeout(() => this.session.close(), IDLE_CLOSE_MS);
    this.#idle.unref();
  }

  #ping(): void {
    const { session } = this;
    if (session.destroyed) return this.#stopTimers();
    const deadline = setTimeout(() => session.destroy(new Error(`keepalive ping not answered in ${KEEPALIVE_TIMEOUT_MS} ms`)), KEEPALIVE_TIMEOUT_MS);
    deadline.unref();
    try {
      session.ping((error) => {
        clearTimeout(deadline);
        if (error !== null && !session.destroyed) session.destroy(error);
      });
    } catch {
      clearTimeout(deadline); // destroyed meanwhile: its streams have been told
    }
  }

  #stopTimers(): void {
    clearInterval(this.#keepalive);
    clearTimeout(this.#idle);
  }
}

export interface ServerStreamOptions {
  /**
   * Reuse the memory of a message once the reader asks for the next one: a message is valid only
   * until then. For readers that write out or copy each message before asking for the next.
   */
  reuseBuffers?: boolean;
}

export class LogSession {
  readonly #options: LogSessionOptions;
  readonly #host: string;
  #connection: Connection | null = null;
  #connecting: Promise<Connection> | null = null;
  #closed = false;

  constructor(options: LogSessionOptions) {
    const host = plainHost(options.address);
    if (host === null) throw new TypeError(`not a host:port address: ${options.address}`);
    this.#options = options;
    this.#host = host;
  }

  /** Closes the connection once its open streams end; streams asked for later fail. */
  close(): void {
    this.#closed = true;
    this.#connection?.session.close();
    this.#connection = null;
  }

  /**
   * Calls the server-streaming method at `path` with `request` (encoded) and yields each message the
   * server sends. Ends when the server ends the call with OK; throws ClientError for any other
   * status, as the channel's calls do. Breaking out of the loop, or `signal`, cancels the call.
   * See ServerStreamOptions.reuseBuffers for how long a message is valid.
   */
  async *serverStream(path: string, request: Uint8Array, signal?: AbortSignal, options: ServerStreamOptions = {}): AsyncGenerator<Buffer> {
    if (signal?.aborted === true) throw cancelledOnClient();
    const connection = await untilAborted(this.#connected(), signal);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = connection.session.request(
        { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-accept-encoding': 'identity' },
        { endStream: false },
      );
    } catch (error) {
      throw unavailable(this.#options.address, error);
    }
    connection.streamOpened();
    const buffers = options.reuseBuffers === true ? new MessageBuffers() : undefined;
    const parser = new GrpcMessageParser(this.#options.maxMessageBytes, buffers);
    const queue: Buffer[] = [];
    let queuedBytes = 0;
    const call: CallEnd = { status: null, readEnded: false, connectionLost: null };
    let closed = false;
    /** Ends the call: after the messages already queued, unless `now` (the caller cancelled). */
    const ending: { failure: { error: unknown; now: boolean } | null } = { failure: null };
    let wake: (() => void) | null = null;
    const wakeReader = () => {
      const waiting = wake;
      wake = null;
      waiting?.();
    };
    const fail = (error: unknown, now = false) => {
      ending.failure ??= { error, now };
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      wakeReader();
    };
    const onAbort = () => fail(cancelledOnClient(), true);
    signal?.addEventListener('abort', onAbort, { once: true });

    stream.on('response', (headers) => {
      const httpStatus = headers[':status'];
      if (httpStatus !== 200) return fail(new ClientError(httpStatusCode(httpStatus), `the server answered HTTP ${httpStatus}, not a gRPC response`));
      // A call that fails before any message has its status in these headers ("Trailers-Only").
      if (headers['grpc-status'] !== undefined) call.status = headers;
    });
    stream.on('data', (piece: Buffer) => {
      if (ending.failure !== null) return;
      let messages: readonly Buffer[];
      try {
        messages = parser.push(piece);
      } catch (error) {
        return fail(error);
      }
      for (const message of messages) {
        queue.push(message);
        queuedBytes += message.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
      }
      // Paused, the stream stops returning receive window to the server: the server holds the rest.
      if (queuedBytes >= QUEUE_HIGH_BYTES) stream.pause();
      if (messages.length > 0) wakeReader();
    });
    stream.on('trailers', (trailers) => {
      call.status = trailers;
    });
    stream.on('end', () => {
      call.readEnded = true;
    });
    stream.on('error', (error: NodeJS.ErrnoException) => {
      // A reset by the server becomes a status from its code once the stream closes; anything
      // else here is the connection failing under the stream.
      if (error.code !== 'ERR_HTTP2_STREAM_ERROR') call.connectionLost ??= error;
    });
    stream.on('close', () => {
      // Node closes a dropped connection's streams with a CANCEL of its own making (as grpc-js notes).
      if (connection.session.destroyed) call.connectionLost ??= new Error('the connection closed');
      closed = true;
      wakeReader();
    });
    stream.end(frameMessage(request));

    try {
      for (;;) {
        const { failure } = ending;
        if (failure !== null && (failure.now || queue.length === 0)) throw failure.error;
        const message = queue.shift();
        if (message !== undefined) {
          queuedBytes -= message.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
          if (queuedBytes < QUEUE_HIGH_BYTES / 2 && stream.isPaused()) stream.resume();
          yield message;
          // The reader asked for the next message: it is done with this one.
          buffers?.giveBack(message);
          continue;
        }
        if (closed) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      const error = endStatus(call, stream.rstCode, parser.pendingBytes, this.#options.address);
      if (error !== null) throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      connection.streamClosed();
    }
  }

  /** The open connection, or a new one once the last has closed or failed. */
  #connected(): Promise<Connection> {
    if (this.#closed) return Promise.reject(new ClientError(StatusCode.CANCELLED, 'the client was closed'));
    if (this.#connection?.usable === true) return Promise.resolve(this.#connection);
    this.#connecting ??= this.#connect().finally(() => (this.#connecting = null));
    return this.#connecting;
  }

  async #connect(): Promise<Connection> {
    const { tls, address } = this.#options;
    // The secure context carries the TLS policy (1.3 only, ciphers, groups) and our certificate.
    const session = http2.connect(`https://${address}`, {
      secureContext: tls.secureContext,
      // SNI takes names only; an IP is verified against the certificate's IP entries all the same.
      ...(isIP(this.#host) === 0 ? { servername: this.#host } : {}),
      ...(tls.checkServerIdentity === undefined ? {} : { checkServerIdentity: tls.checkServerIdentity }),
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW_BYTES },
    });
    session.on('error', () => undefined); // each open stream is told; the next stream reconnects
    const connection = new Connection(session);
    session.once('close', () => {
      if (this.#connection === connection) this.#connection = null;
    });
    await onceConnected(session, this.#options);
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    if (this.#closed) {
      session.close();
      throw new ClientError(StatusCode.CANCELLED, 'the client was closed');
    }
    this.#connection = connection;
    return connection;
  }
}

/** `promise`, or CANCELLED as soon as `signal` aborts (what it waits for carries on for later callers). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(cancelledOnClient());
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function onceConnected(session: http2.ClientHttp2Session, options: LogSessionOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      const error = new ClientError(StatusCode.UNAVAILABLE, `connecting to ${options.address}: no answer in ${options.connectTimeoutMs} ms`);
      session.destroy(error);
      reject(error);
    }, options.connectTimeoutMs);
    const onConnect = () => {
      done();
      resolve();
    };
    const onError = (error: Error) => {
      done();
      reject(unavailable(options.address, error));
    };
    const onClose = () => {
      done();
      reject(new ClientError(StatusCode.UNAVAILABLE, `connecting to ${options.address}: the connection closed`));
    };
    function done() {
      clearTimeout(timer);
      session.off('connect', onConnect);
      session.off('error', onError);
      session.off('close', onClose);
    }
    session.once('connect', onConnect);
    session.once('error', onError);
    session.once('close', onClose);
  });
}

function unavailable(address: string, error: unknown): ClientError {
  if (error instanceof ClientError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new ClientError(StatusCode.UNAVAILABLE, `connection to ${address} failed: ${detail}`);
}

/** gRPC's mapping of an HTTP status that is not 200 (grpc/doc/http-grpc-status-mapping.md). */
function httpStatusCode(httpStatus: number | undefined): number {
  switch (httpStatus) {
    case 400:
      return StatusCode.INTERNAL;
    case 401:
      return StatusCode.UNAUTHENTICATED;
    case 403:
      return StatusCode.PERMISSION_DENIED;
    case 404:
      return StatusCode.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return StatusCode.UNAVAILABLE;
    default:
      return StatusCode.UNKNOWN;
  }
}

/** What a stream learnt of how its call ended. */
export interface CallEnd {
  /** The trailers, or the headers of a Trailers-Only answer. */
  status: http2.IncomingHttpHeaders | null;
  /** Every byte of the answer was read ('end'). */
  readEnded: boolean;
  /** The connection failed under the stream. */
  connectionLost: Error | null;
}

/** The call's error once its stream has closed, or null for OK. */
export function endStatus(call: CallEnd, rstCode: number | undefined, pendingBytes: number, address: string): ClientError | null {
  if (call.status !== null && call.readEnded) {
    const code = Number(call.status['grpc-status']);
    if (code === StatusCode.OK) {
      return pendingBytes > 0 ? new ClientError(StatusCode.INTERNAL, `the stream ended inside a message (${pendingBytes} bytes of it)`) : null;
    }
    const message = header(call.status['grpc-message']);
    let details = message;
    try {
      details = decodeURIComponent(message);
    } catch {
      // not percent-encoded after all: shown as sent
    }
    const runner = header(call.status[RUNNER_ADDRESS_METADATA]);
    return new ClientError(Number.isInteger(code) ? code : StatusCode.UNKNOWN, details, code === StatusCode.FAILED_PRECONDITION && runner !== '' ? runner : null);
  }
  if (call.connectionLost !== null) return unavailable(address, call.connectionLost);
  if (call.status !== null) return new ClientError(StatusCode.UNAVAILABLE, `connection to ${address} closed before the rest of the answer was read`);
  // No status: the stream was reset (grpc-js's mapping, subchannel-call.ts).
  switch (rstCode) {
    case http2.constants.NGHTTP2_REFUSED_STREAM:
      return new ClientError(StatusCode.UNAVAILABLE, 'Stream refused by server');
    case http2.constants.NGHTTP2_CANCEL:
      return new ClientError(StatusCode.CANCELLED, 'Call cancelled');
    case http2.constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return new ClientError(StatusCode.RESOURCE_EXHAUSTED, 'Bandwidth exhausted or memory limit exceeded');
    case http2.constants.NGHTTP2_INADEQUATE_SECURITY:
      return new ClientError(StatusCode.PERMISSION_DENIED, 'Protocol not secure enough');
    case http2.constants.NGHTTP2_INTERNAL_ERROR:
      return new ClientError(StatusCode.INTERNAL, `Received RST_STREAM with code ${rstCode} (Internal server error)`);
    case http2.constants.NGHTTP2_NO_ERROR:
    case undefined:
      return new ClientError(StatusCode.INTERNAL, `Received RST_STREAM with code ${rstCode ?? 0} (Call ended without gRPC status)`);
    default:
      return new ClientError(StatusCode.INTERNAL, `Received RST_STREAM with code ${rstCode}`);
  }
}

function header(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}
