// The daemon's metrics listener: plain HTTP serving GET /metrics from the server's registry (prom-client
// does the exposition format). Loopback by default: metrics are not authenticated.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { errorCode } from '../errors';
import { ListenError, splitHostPort, type ServerMetrics } from '../server';

export class MetricsListener {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  #server: Server;

  private constructor(server: Server) {
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Listens on `address` ("host:port"; port 0 picks a free one); resolves once listening. */
  static async start(metrics: ServerMetrics, address: string): Promise<MetricsListener> {
    const { host, port } = splitHostPort(address, 'metrics listen');
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
        return;
      }
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
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
