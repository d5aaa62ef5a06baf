// The daemon's metrics listener: plain HTTP serving GET /metrics from the server's registry (prom-client
// does the exposition format). Loopback by default: metrics are not authenticated. But a job on the
// host's network (the default) reaches loopback too, and the metrics name identities and their use
// (what GetIdentityUsage shows only to the identity itself and admins): a connection whose other
// end a job's uid owns (./socket-owner.ts) is answered 403 and closed.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { errorCode } from '../errors';
import { ListenError, splitHostPort, type ServerMetrics } from '../server';
import { tcpPeerUids } from './socket-owner';

/**
 * Connections open at once, at most (beyond it Node closes a new one at accept). Each is one of the
 * daemon's fds, outside its fd budget (src/server/fd-budget.ts), and the listener is reachable by
 * jobs on the host's network: unbounded, one job's 3,000 idle connections were 3,000 daemon fds,
 * and enough of them fill the daemon's fd table (accept, spawns, the journal: EMFILE).
 */
export const METRICS_MAX_CONNECTIONS = 64;
/** A connection's request must arrive whole within this (Node's default waits 60 s for headers). */
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsListenerOptions {
  /** Whether `uid` is one the daemon's jobs run as (its dynamic uids): not served. */
  isJobUid?: (uid: number) => boolean;
  /** Default METRICS_MAX_CONNECTIONS. */
  maxConnections?: number;
}

export class MetricsListener {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  #server: Server;

  private constructor(server: Server) {
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Listens on `address` ("host:port"; port 0 picks a free one); resolves once listening. */
  static async start(metrics: ServerMetrics, address: string, options: MetricsListenerOptions = {}): Promise<MetricsListener> {
    const { host, port } = splitHostPort(address, 'metrics listen');
    // One look at the kernel's socket table at a time: a job can make the table long (each read
    // tens of ms on a threadpool thread) and send requests as fast as it likes; in turn, it holds
    // one thread, not the pool every spawn and file call of the daemon uses.
    // A connection's owner does not change: looked up once, at its first request (a scraper's
    // keep-alive connection, or a job's, sends many).
    let lookups: Promise<unknown> = Promise.resolve();
    const owners = new WeakMap<Socket, Promise<boolean>>();
    const lookUpOwner = async (socket: Socket): Promise<boolean> => {
      const { remoteAddress, remotePort, localAddress, localPort } = socket;
      if (options.isJobUid === undefined || remotePort === undefined || localPort === undefined) return false;
      if (remoteAddress === undefined || localAddress === undefined) return false;
      const isJobUid = options.isJobUid;
      const lookup = lookups.then(() => tcpPeerUids({ address: remoteAddress, port: remotePort }, { address: localAddress, port: localPort }));
      lookups = lookup.catch(() => undefined);
      return (await lookup).some(isJobUid);
    };
    const fromJob = (socket: Socket): Promise<boolean> => {
      let owner = owners.get(socket);
      if (owner === undefined) {
        owner = lookUpOwner(socket);
        owners.set(socket, owner);
      }
      return owner;
    };
    const server = createServer(async (req, res) => {
      if (await fromJob(req.socket)) {
        res.writeHead(403, { 'content-type': 'text/plain', connection: 'close' }).end("metrics are not served to the daemon's jobs\n");
        return;
      }
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
        return;
      }
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    server.maxConnections = options.maxConnections ?? METRICS_MAX_CONNECTIONS;
    server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
    server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
    } catch (error) {
      throw new ListenError(address, errorCode(error), (error as Error).message, 'metrics');
    }
    return new MetricsListener(server);
  }

  /** Closes the listener and every connection to it. */
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
