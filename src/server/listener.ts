// The daemon's TCP listener: our own net.Server in front of grpc-js (`createConnectionInjector`),
// so that the daemon holds every connection's socket and can close the ones whose connection the
// kernel has already closed.
//
// Why (docs/reliability.md, "Found and fixed"): with Node 20's http2 over TLS, a session whose
// client resets the TCP connection while the server is writing is sometimes never told: the
// session has stopped reading (a write is in progress) and the write never completes, so nobody
// polls the socket. grpc-js's keepalive destroys that session ~40 s later, but Node's Http2Session
// only closes its socket once the write in progress completes (`ondone` → `finishSessionClose`),
// which never happens: the fd stayed open for good. It happens with or without a grpc-js
// interceptor (test/reliability/http2-socket-leak.ts). The session and the TLS socket are internal
// to grpc-js; the raw TCP socket, accepted here, is ours.
//
// Every DEAD_SOCKET_SWEEP_MS the listener asks the kernel, for each open connection, whether it is
// still connected (getpeername(2); ENOTCONN once the connection is reset or fully closed), and
// destroys the sockets that are not. Destroying the raw socket closes the fd; Node then destroys
// the TLS socket above it and the HTTP/2 session above that, so grpc-js ends the session's calls
// (CANCELLED to the handlers) — within the sweep period instead of after keepalive. A socket the
// kernel has closed can neither send nor receive any more, so nothing is lost.
import { createServer, type Server as NetServer, type Socket } from 'node:net';

import type { Server, ServerCredentials } from '@grpc/grpc-js';

export const DEAD_SOCKET_SWEEP_MS = 5000;

/**
 * True if the kernel no longer holds a connection behind `socket` (getpeername fails with
 * ENOTCONN after a reset or a completed close). net.Socket has no public way to ask this afresh
 * (`remoteAddress` is cached after its first use), so this calls the socket handle's `getpeername`,
 * the method net.Socket's own `remoteAddress` uses; without it the answer is false (never destroy).
 */
export function connectionGone(socket: Socket): boolean {
  const handle: unknown = Reflect.get(socket, '_handle');
  if (typeof handle !== 'object' || handle === null || !('getpeername' in handle) || typeof handle.getpeername !== 'function') return false;
  return handle.getpeername({}) !== 0;
}

export interface GrpcListenerOptions {
  host: string;
  port: number;
  /** Told how many dead connections a sweep closed (only when it closed some). */
  onSwept?: (closed: number) => void;
  sweepMs?: number;
}

/** Accepts TCP connections and hands them to a grpc-js server; see the top of this file. */
export class GrpcListener {
  readonly port: number;
  #net: NetServer;
  #sockets: Set<Socket>;
  #timer: NodeJS.Timeout;
  #onSwept: ((closed: number) => void) | undefined;

  private constructor(net: NetServer, sockets: Set<Socket>, port: number, options: GrpcListenerOptions) {
    this.#net = net;
    this.#sockets = sockets;
    this.port = port;
    this.#onSwept = options.onSwept;
    this.#timer = setInterval(() => this.sweep(), options.sweepMs ?? DEAD_SOCKET_SWEEP_MS);
    this.#timer.unref();
  }

  /** Listens on host:port (port 0 picks a free one) and serves `server` over `credentials`. */
  static async start(server: Server, credentials: ServerCredentials, options: GrpcListenerOptions): Promise<GrpcListener> {
    const injector = server.createConnectionInjector(credentials);
    const sockets = new Set<Socket>();
    const net = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      // Errors surface on the TLS socket grpc-js wraps around this one; never let one be uncaught here.
      socket.on('error', () => undefined);
      injector.injectConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen({ host: options.host, port: options.port }, () => {
        net.off('error', reject);
        resolve();
      });
    });
    const address = net.address();
    const port = typeof address === 'object' && address !== null ? address.port : options.port;
    return new GrpcListener(net, sockets, port, options);
  }

  /** Open connections (raw TCP sockets). */
  get connections(): number {
    return this.#sockets.size;
  }

  /** Destroys the sockets whose connection the kernel has closed; returns how many. */
  sweep(): number {
    let closed = 0;
    for (const socket of this.#sockets) {
      if (!socket.destroyed && connectionGone(socket)) {
        socket.destroy();
        closed++;
      }
    }
    if (closed > 0) this.#onSwept?.(closed);
    return closed;
  }

  /** Stops accepting connections (open ones are left to grpc-js's shutdown). */
  stopAccepting(): void {
    this.#net.close();
  }

  /** Stops accepting and destroys every connection still open (after grpc-js's shutdown). */
  close(): void {
    clearInterval(this.#timer);
    this.#net.close();
    for (const socket of this.#sockets) socket.destroy();
  }
}
