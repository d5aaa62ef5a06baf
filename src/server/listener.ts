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
//
// Holding the sockets also bounds them, before any TLS work: a connection beyond `maxConnections`,
// beyond `maxConnectionsPerAddress` from one peer address, or that the daemon's fd budget cannot
// hold (`admit`) is closed at accept, and told to `onRefused`. Except: the oldest connection (from
// the same peer address, at the per-address cap) that has not made a call yet is closed instead, if
// there is one, and the new one kept. Connecting needs no certificate, so without that any process that
// can reach the port (a job, on the host's network by default) could hold every connection with
// handshakes it never finishes, shutting out every client, the admin who would stop it included.
// A connection is "in use" once a call on it got past authentication (`markInUse`, from the
// authentication interceptor, by the call's peer "address:port"): its client showed a certificate. (TLS handshakes that stall are cut
// by the credentials' handshake timeout, ./tls.ts.) Accept errors (EMFILE when the fd table is
// full) are reported, never thrown: an 'error' event without a listener would kill the daemon.
import { createServer, type Server as NetServer, type Socket } from 'node:net';

import type { Server, ServerCredentials } from '@grpc/grpc-js';

import { runPeriodically, type PeriodicTask } from '../periodic';

export const DEAD_SOCKET_SWEEP_MS = 5000;
export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 128;

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
  /** Open connections at most (default DEFAULT_MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Open connections from one peer address at most (default DEFAULT_MAX_CONNECTIONS_PER_ADDRESS). */
  maxConnectionsPerAddress?: number;
  /** Asked at each accept whether one more connection fits (the fd budget); false closes it. */
  admit?: () => boolean;
  /** Told about each connection closed at accept, and why. */
  onRefused?: (address: string, reason: string) => void;
  /** Told about each connection closed to make room for a new one (it had made no call), and why. */
  onEvicted?: (address: string, reason: string) => void;
  /** Told about accept errors and failed sweeps (logged; never thrown). */
  onError?: (what: string, error: unknown, failures: number) => void;
}

/**
 * The key a connection counts under for the per-address bound: its peer address, except that every
 * loopback address (127.0.0.0/8, as IPv4 or IPv4-mapped IPv6, and ::1) is one: a process on this
 * host (a job, whose network is the host's by default) may connect from any of the 16 million
 * addresses of 127/8, and would otherwise hold `maxConnections` by itself, 128 per source address,
 * shutting every client out without ever showing a certificate.
 */
export function peerAddressKey(address: string): string {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1') return 'loopback';
  return address;
}

/** The peer of a connection as grpc-js's `call.getPeer()` names it: "address:port". */
export function peerName(address: string | undefined, port: number | undefined): string {
  return port ? `${address}:${port}` : (address ?? 'unknown');
}

interface OpenConnection {
  /** peerAddressKey() of its address: what it counts under for the per-address cap. */
  address: string;
  /** peerName(): how a call on it names it. */
  peer: string;
  /** A call on it got past authentication (markInUse). */
  inUse: boolean;
}

/** Accepts TCP connections and hands them to a grpc-js server; see the top of this file. */
export class GrpcListener {
  readonly port: number;
  #net: NetServer;
  /** Every open connection, oldest first. */
  #sockets = new Map<Socket, OpenConnection>();
  /** The same, by peer name, for markInUse. */
  #byPeer = new Map<string, OpenConnection>();
  /** Open connections per peer address (peerAddressKey: loopback counts as one). */
  #perAddress = new Map<string, number>();
  #timer: PeriodicTask;
  #onSwept: ((closed: number) => void) | undefined;
  #admit: (() => boolean) | undefined;
  #onRefused: ((address: string, reason: string) => void) | undefined;
  #onEvicted: ((address: string, reason: string) => void) | undefined;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;

  private constructor(net: NetServer, port: number, options: GrpcListenerOptions) {
    this.#net = net;
    this.port = port;
    this.#onSwept = options.onSwept;
    this.#admit = options.admit;
    this.#onRefused = options.onRefused;
    this.#onEvicted = options.onEvicted;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxConnectionsPerAddress = options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
    const onError = options.onError ?? (() => undefined);
    this.#timer = runPeriodically({ name: 'dead connection sweep', intervalMs: options.sweepMs ?? DEAD_SOCKET_SWEEP_MS, task: () => this.sweep(), onError });
  }

  /** Listens on host:port (port 0 picks a free one) and serves `server` over `credentials`. */
  static async start(server: Server, credentials: ServerCredentials, options: GrpcListenerOptions): Promise<GrpcListener> {
    const injector = server.createConnectionInjector(credentials);
    let listener: GrpcListener | undefined;
    const net = createServer((socket) => {
      if (listener === undefined) socket.destroy(); // not listening yet: cannot happen, never leak
      else if (listener.#accept(socket)) injector.injectConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen({ host: options.host, port: options.port }, () => {
        net.off('error', reject);
        resolve();
      });
    });
    // From now on (EMFILE at accept, mostly): reported, never uncaught.
    let acceptFailures = 0;
    let lastReport = 0;
    net.on('error', (error) => {
      acceptFailures++;
      if (Date.now() - lastReport < 60_000) return;
      lastReport = Date.now();
      options.onError?.('accept', error, acceptFailures);
      acceptFailures = 0;
    });
    const address = net.address();
    const port = typeof address === 'object' && address !== null ? address.port : options.port;
    listener = new GrpcListener(net, port, options);
    return listener;
  }

  /**
   * Counts a new connection in, or closes it at once (before any TLS) if it does not fit. At a count
   * cap, an older connection that has made no call makes room for it instead (top of this file).
   */
  #accept(socket: Socket): boolean {
    // Errors surface on the TLS socket grpc-js wraps around this one; never let one be uncaught here.
    socket.on('error', () => undefined);
    const address = peerAddressKey(socket.remoteAddress ?? 'unknown');
    const fromAddress = this.#perAddress.get(address) ?? 0;
    // At the per-address cap only a connection from the same address can make room (which makes room
    // in the total as well).
    const sameAddress = fromAddress >= this.maxConnectionsPerAddress;
    let refusal: string | null = null;
    if (this.#sockets.size >= this.maxConnections) refusal = `${this.#sockets.size} connections open, the limit is ${this.maxConnections}`;
    else if (sameAddress) refusal = `${fromAddress} connections open from ${address}, the limit per address is ${this.maxConnectionsPerAddress}`;
    else if (this.#admit?.() === false) refusal = "the daemon's file descriptor budget is used up";
    if (refusal !== null) {
      const idle = this.#oldestNotInUse(sameAddress ? address : null);
      if (idle !== null) {
        // Closing its socket gives its fd back at once (libuv closes the fd in uv_close).
        const [victim, open] = idle;
        this.#forget(victim);
        victim.destroy();
        this.#onEvicted?.(open.address, `closed to make room (${refusal}): it had made no call`);
        refusal = null;
      }
    }
    if (refusal !== null) {
      socket.destroy();
      this.#onRefused?.(address, refusal);
      return false;
    }
    const open: OpenConnection = { address, peer: peerName(socket.remoteAddress, socket.remotePort), inUse: false };
    this.#sockets.set(socket, open);
    this.#byPeer.set(open.peer, open);
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    socket.once('close', () => this.#forget(socket));
    return true;
  }

  /** The oldest open connection (from `address`, if given) that has made no call, or null. */
  #oldestNotInUse(address: string | null): [Socket, OpenConnection] | null {
    for (const entry of this.#sockets) {
      if (!entry[1].inUse && (address === null || entry[1].address === address)) return entry;
    }
    return null;
  }

  /** Stops counting `socket` (at its close, or at once when evicted; the second call does nothing). */
  #forget(socket: Socket): void {
    const open = this.#sockets.get(socket);
    if (open === undefined) return;
    this.#sockets.delete(socket);
    if (this.#byPeer.get(open.peer) === open) this.#byPeer.delete(open.peer);
    const left = (this.#perAddress.get(open.address) ?? 1) - 1;
    if (left === 0) this.#perAddress.delete(open.address);
    else this.#perAddress.set(open.address, left);
  }

  /**
   * A call on the connection from `peer` ("address:port", grpc-js's `call.getPeer()`) got past
   * authentication: its client holds a certificate, and it is never closed to make room. A peer
   * that is not one of this listener's connections is ignored.
   */
  markInUse(peer: string): void {
    const open = this.#byPeer.get(peer);
    if (open !== undefined) open.inUse = true;
  }

  /** Open connections (raw TCP sockets). */
  get connections(): number {
    return this.#sockets.size;
  }

  /** Destroys the sockets whose connection the kernel has closed; returns how many. */
  sweep(): number {
    let closed = 0;
    for (const socket of this.#sockets.keys()) {
      if (!socket.destroyed && connectionGone(socket)) {
        socket.destroy();
        closed++;
      }
    }
    if (closed > 0) this.#onSwept?.(closed);
    return closed;
  }

  /** Closes every connection open now (new ones are accepted as before); returns how many. */
  closeConnections(): number {
    const open = [...this.#sockets.keys()];
    for (const socket of open) socket.destroy();
    return open.length;
  }

  /** Stops accepting connections (open ones are left to grpc-js's shutdown). */
  stopAccepting(): void {
    this.#net.close();
  }

  /** Stops accepting and destroys every connection still open (after grpc-js's shutdown). */
  close(): void {
    this.#timer.stop();
    this.#net.close();
    for (const socket of this.#sockets.keys()) socket.destroy();
  }
}
