// The client's log streams, over an HTTP/2 connection of their own (issue 17). Through grpc-js a
// follower cost the client about twice the CPU of reading the same bytes off HTTP/2 itself: its
// client call holds the HTTP/2 stream paused between messages until the reader asks for the next
// one, re-buffers every piece, and delivers through an object stream; on two cores that CPU is
// taken from the daemon and the job, and one follower got ~300 MB/s where the bytes alone moved at
// ~400 (docs/benchmarks.md). Here a stream's pieces are cut into messages as they arrive
// (./grpc-frames.ts) and queued up to a bound; the server sees an ordinary gRPC call on an ordinary
// mutual-TLS connection with the same certificate, so its RBAC, limits and errors are the same.
//
// The connection opens on the first stream, serves every stream of this client, and closes with
// it. It holds the process open only while a stream is open, and a ping every KEEPALIVE_MS (answered
// within KEEPALIVE_TIMEOUT_MS) notices a daemon that went away, as the channel's keepalive does.
import * as http2 from 'node:http2';
import { isIP } from 'node:net';

import { RUNNER_ADDRESS_METADATA } from '../api/runner-redirect';
import { ClientError, StatusCode } from './client-error';
import type { ClientTlsContext } from './credentials';
import { frameMessage, GrpcMessageParser } from './grpc-frames';

/**
 * Receive window of each stream (the bytes the server may send unasked: what a stream that stops
 * reading costs the daemon, docs/api.md; the same as the channel's) and of the whole connection.
 */
const STREAM_WINDOW_BYTES = 1 << 20;
const CONNECTION_WINDOW_BYTES = 8 << 20;
/**
 * Decoded messages a stream holds for a reader that has not taken them; past this it stops reading
 * (and so stops returning window to the server) until half of them are taken. A reader that stops
 * costs the client at most this, its window and one message.
 */
const QUEUE_HIGH_BYTES = 2 << 20;
const KEEPALIVE_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;

/** "host:port" or "[v6]:port" as a URL authority, and the host; null for what only grpc-js resolves (dns:, unix:…). */
export function plainAuthority(address: string): { authority: string; host: string } | null {
  const bracketed = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(address);
  if (bracketed !== null) return { authority: address, host: bracketed[1]! };
  const plain = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  return plain === null ? null : { authority: address, host: plain[1]! };
}

export interface LogSessionOptions {
  /** "host:port" (plainAuthority). */
  address: string;
  tls: ClientTlsContext;
  /** Connecting (TCP and TLS) fails after this long. */
  connectTimeoutMs: number;
  maxMessageBytes: number;
}

export class LogSession {
  readonly #options: LogSessionOptions;
  readonly #host: string;
  #session: http2.ClientHttp2Session | null = null;
  #openStreams = 0;
  #closed = false;

  constructor(options: LogSessionOptions) {
    const parsed = plainAuthority(options.address);
    if (parsed === null) throw new TypeError(`not a host:port address: ${options.address}`);
    this.#options = options;
    this.#host = parsed.host;
  }

  /** Closes the connection once its open streams end; streams asked for later fail. */
  close(): void {
    this.#closed = true;
    this.#session?.close();
    this.#session = null;
  }

  /**
   * Calls the server-streaming method at `path` with `request` (encoded) and yields each message the
   * server sends. Ends when the server ends the call with OK; throws ClientError for any other
   * status, as the channel's calls do. Breaking out of the loop, or `signal`, cancels the call.
   */
  async *serverStream(path: string, request: Uint8Array, signal?: AbortSignal): AsyncGenerator<Buffer> {
    signal?.throwIfAborted();
    const session = await this.#connected();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(
        { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-accept-encoding': 'identity' },
        { endStream: false },
      );
    } catch (error) {
      throw unavailable(this.#options.address, error);
    }
    this.#streamOpened(session);
    const parser = new GrpcMessageParser(this.#options.maxMessageBytes);
    const queue: Buffer[] = [];
    let queuedBytes = 0;
    let ended = false;
    let failure: unknown = null;
    let status: http2.IncomingHttpHeaders | null = null;
    let wake: (() => void) | null = null;
    const wakeReader = () => {
      const waiting = wake;
      wake = null;
      waiting?.();
    };
    const fail = (error: unknown) => {
      failure ??= error;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      wakeReader();
    };
    const onAbort = () => fail(new ClientError(StatusCode.CANCELLED, 'Cancelled on client'));
    signal?.addEventListener('abort', onAbort, { once: true });

    stream.on('response', (headers) => {
      const httpStatus = headers[':status'];
      if (httpStatus !== 200) return fail(new ClientError(httpStatusCode(httpStatus), `the server answered HTTP ${httpStatus}, not a gRPC response`));
      // A call that fails before any message has its status in these headers ("Trailers-Only").
      if (headers['grpc-status'] !== undefined) status = headers;
    });
    stream.on('data', (piece: Buffer) => {
      if (failure !== null) return;
      let messages: Buffer[];
      try {
        messages = parser.push(piece);
      } catch (error) {
        return fail(error);
      }
      for (const message of messages) {
        queue.push(message);
        queuedBytes += message.length;
      }
      // Paused, the stream stops returning receive window to the server: the server holds the rest.
      if (queuedBytes >= QUEUE_HIGH_BYTES) stream.pause();
      if (messages.length > 0) wakeReader();
    });
    stream.on('trailers', (trailers) => {
      status = trailers;
    });
    stream.on('error', (error) => fail(unavailable(this.#options.address, error)));
    stream.on('close', () => {
      ended = true;
      wakeReader();
    });
    stream.end(frameMessage(request));

    try {
      for (;;) {
        if (failure !== null) throw failure;
        const message = queue.shift();
        if (message !== undefined) {
          queuedBytes -= message.length;
          if (queuedBytes < QUEUE_HIGH_BYTES / 2 && stream.isPaused()) stream.resume();
          yield message;
          continue;
        }
        if (ended) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      throwUnlessOk(status, stream.rstCode, parser.pendingBytes);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      this.#streamClosed(session);
    }
  }

  #streamOpened(session: http2.ClientHttp2Session): void {
    if (this.#openStreams++ === 0) session.ref();
  }

  #streamClosed(session: http2.ClientHttp2Session): void {
    if (--this.#openStreams === 0 && !session.destroyed) session.unref();
  }

  /** The open connection, or a new one once the last has closed or failed. */
  async #connected(): Promise<http2.ClientHttp2Session> {
    if (this.#closed) throw new ClientError(StatusCode.CANCELLED, 'the client was closed');
    const current = this.#session;
    if (current !== null && !current.closed && !current.destroyed) {
      if (current.connecting) await onceConnected(current, this.#options);
      return current;
    }
    const { tls, address } = this.#options;
    const session = http2.connect(`https://${address}`, {
      secureContext: tls.secureContext,
      minVersion: 'TLSv1.3',
      // SNI takes names only; an IP is verified against the certificate's IP entries all the same.
      ...(isIP(this.#host) === 0 ? { servername: this.#host } : {}),
      ...(tls.checkServerIdentity === undefined ? {} : { checkServerIdentity: tls.checkServerIdentity }),
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW_BYTES },
    });
    this.#session = session;
    session.on('error', () => undefined); // each stream reports it; the next stream reconnects
    session.on('close', () => {
      if (this.#session === session) this.#session = null;
    });
    session.unref();
    keepAlive(session);
    await onceConnected(session, this.#options);
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    return session;
  }
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

/** Pings while streams are open; a ping unanswered in time ends the connection (and its streams). */
function keepAlive(session: http2.ClientHttp2Session): void {
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) return clearInterval(timer);
    const deadline = setTimeout(() => session.destroy(new Error(`keepalive ping not answered in ${KEEPALIVE_TIMEOUT_MS} ms`)), KEEPALIVE_TIMEOUT_MS);
    deadline.unref();
    const sent = session.ping((error) => {
      clearTimeout(deadline);
      if (error !== null && !session.destroyed) session.destroy(error);
    });
    if (!sent) clearTimeout(deadline);
  }, KEEPALIVE_MS);
  timer.unref();
  session.once('close', () => clearInterval(timer));
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

/** Throws the call's status unless it is OK (a status sent, no bytes of a message left over). */
function throwUnlessOk(status: http2.IncomingHttpHeaders | null, rstCode: number | undefined, pendingBytes: number): void {
  if (status === null) {
    const reason = rstCode !== undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR ? ` (HTTP/2 reset, code ${rstCode})` : '';
    throw new ClientError(StatusCode.UNAVAILABLE, `the stream ended without a status${reason}`);
  }
  const code = Number(status['grpc-status']);
  if (code === StatusCode.OK) {
    if (pendingBytes > 0) throw new ClientError(StatusCode.INTERNAL, `the stream ended inside a message (${pendingBytes} bytes of it)`);
    return;
  }
  const message = header(status['grpc-message']);
  let details = message;
  try {
    details = decodeURIComponent(message);
  } catch {
    // not percent-encoded after all: shown as sent
  }
  const runner = header(status[RUNNER_ADDRESS_METADATA]);
  throw new ClientError(
    Number.isInteger(code) ? code : StatusCode.UNKNOWN,
    details,
    code === StatusCode.FAILED_PRECONDITION && runner !== '' ? runner : null,
  );
}

function header(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}
