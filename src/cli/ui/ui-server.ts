// The UI's HTTP server: the page and its assets (built into dist/web at build time; nothing is
// fetched from anywhere at run time), the WebSocket that keeps the page live, the raw log download,
// and the actions (start, stop, remove). Every request passes the access guard first.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import { WebSocketServer } from 'ws';

import { isJobId } from '../../job-id';
import { CliError } from '../run';
import { checkAccess, TOKEN_PARAMETER, WEBSOCKET_PROTOCOL, type AccessPolicy, type AccessSecrets } from './access-guard';
import { ActionError, removeJob, startJob, stopJob, toActionError } from './actions';
import { acceptedHosts, urlHost, type ListenAddress } from './listen-address';
import { PageSession, type HostRuntime } from './page-session';
import { streamRawLog } from './raw-log';
import type { StaticAssets } from './static-assets';

/**
 * Only this server's own scripts, styles, images and connections; no framing. xterm.js styles its
 * rows with <style> elements: inline styles, but no inline script anywhere. The WebSocket's origin
 * is named as well as 'self' (browsers before CSP 3 do not count ws: as 'self').
 */
function contentSecurityPolicy(host: string | undefined): string {
  const socket = host === undefined ? '' : ` ws://${host}`;
  return `default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'${socket}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`;
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** The daemon's own cap on a request message (docs/api.md): a bigger form could not be sent on anyway. */
const MAX_BODY_BYTES = 2 << 20;

export interface UiServerOptions {
  listen: ListenAddress;
  hosts: ReadonlyMap<string, HostRuntime>;
  secrets: AccessSecrets;
  assets: StaticAssets;
}

export class UiServer {
  readonly #server: Server;
  // The page offers two subprotocols: ours, and one that carries its session (./access-guard.ts).
  readonly #sockets = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(WEBSOCKET_PROTOCOL) ? WEBSOCKET_PROTOCOL : false),
  });
  readonly #options: UiServerOptions;
  #policy: AccessPolicy;
  #address: ListenAddress;

  private constructor(options: UiServerOptions) {
    this.#options = options;
    this.#address = options.listen;
    this.#policy = this.#policyFor(options.listen);
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => this.#reply(response, 500, { error: error instanceof Error ? error.message : String(error), field: null }));
    });
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade(request, socket, head));
  }

  /** Listens; fails (EADDRINUSE…) before anything is printed. */
  static async start(options: UiServerOptions): Promise<UiServer> {
    const server = new UiServer(options);
    server.#server.listen(options.listen.port, options.listen.host);
    try {
      await once(server.#server, 'listening');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const where = urlHost(options.listen);
      if (code === 'EADDRINUSE') throw new CliError(`--listen ${where}: the address is in use`, 'another program listens there; --listen with port 0 picks a free one');
      if (code === 'EADDRNOTAVAIL') throw new CliError(`--listen ${where}: no interface of this host has that address`);
      if (code === 'EACCES') throw new CliError(`--listen ${where}: not allowed (ports below 1024 need privileges)`);
      throw error;
    }
    const bound = server.#server.address();
    if (bound !== null && typeof bound === 'object') {
      server.#address = { host: options.listen.host, port: bound.port };
      server.#policy = server.#policyFor(server.#address);
    }
    return server;
  }

  /** The page's address, and the same with the token: the one to open. */
  get url(): string {
    return `http://${urlHost(this.#address)}/`;
  }

  get urlWithToken(): string {
    return `${this.url}?${TOKEN_PARAMETER}=${this.#options.secrets.token}`;
  }

  async close(): Promise<void> {
    for (const client of this.#sockets.clients) client.terminate();
    this.#sockets.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #policyFor(address: ListenAddress): AccessPolicy {
    return { secrets: this.#options.secrets, hosts: acceptedHosts(address) };
  }

  #upgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const verdict = checkAccess({ method: request.method ?? 'GET', url: request.url ?? '/', headers: request.headers, upgrade: true }, this.#policy);
    const path = new URL(request.url ?? '/', 'http://ui.invalid').pathname;
    if (!verdict.allow || path !== '/api/ws') {
      const status = verdict.allow ? 404 : verdict.login ? 403 : verdict.status;
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Forbidden'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    this.#sockets.handleUpgrade(request, socket, head, (webSocket) => new PageSession(webSocket, this.#options.hosts).start());
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
    const method = request.method ?? 'GET';
    const verdict = checkAccess({ method, url: request.url ?? '/', headers: request.headers, upgrade: false }, this.#policy);
    // The Host is one of ours once the guard let the request through (or opened the page for the token).
    response.setHeader('content-security-policy', contentSecurityPolicy(verdict.allow || verdict.login ? request.headers.host : undefined));
    if (!verdict.allow) {
      // The token opens the page, with the session written into it (no-store: never cached).
      if (verdict.login) return this.#options.assets.serve('/', response, { session: this.#options.secrets.session });
      this.#reply(response, verdict.status, { error: verdict.reason, field: null });
      return;
    }
    const url = new URL(request.url ?? '/', 'http://ui.invalid');
    if (verdict.page) return this.#options.assets.serve(url.pathname, response, { session: null });
    const api = /^\/api\/hosts\/([^/]+)\/jobs(?:\/([^/]+)(?:\/(stop|log))?)?$/.exec(url.pathname);
    if (api === null) return this.#reply(response, 404, { error: `no ${url.pathname} here`, field: null });
    const [hostName, id, action] = [decodeURIComponent(api[1]!), api[2] === undefined ? undefined : decodeURIComponent(api[2]), api[3]];
    if (id !== undefined && !isJobId(id)) return this.#reply(response, 400, { error: `${JSON.stringify(id)} is not a job id`, field: null });
    const host = this.#options.hosts.get(hostName);
    if (host === undefined) return this.#reply(response, 404, { error: `no host named ${JSON.stringify(hostName)}`, field: null });
    try {
      if (method === 'POST' && id === undefined) return this.#reply(response, 201, { job: await startJob(host.connection, await readJson(request)) });
      if (method === 'POST' && id !== undefined && action === 'stop') return this.#reply(response, 200, await stopJob(host.connection, id, await readJson(request)));
      if (method === 'DELETE' && id !== undefined && action === undefined) {
        await removeJob(host.connection, id);
        return this.#reply(response, 200, { removed: id });
      }
      if (method === 'GET' && id !== undefined && action === 'log') return await streamRawLog(host.connection, id, url.searchParams.get('streams'), response);
      return this.#reply(response, 405, { error: `${method} ${url.pathname} is not supported`, field: null });
    } catch (error) {
      const failure = toActionError(error, host.connection);
      if (response.headersSent) response.destroy(failure);
      else this.#reply(response, failure.status, { error: failure.message, field: failure.field });
    }
  }

  #reply(response: ServerResponse, status: number, body: unknown): void {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  }
}

/** A JSON request body, at most MAX_BODY_BYTES; only application/json (forms cannot send that without the page's script). */
async function readJson(request: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) throw new ActionError(415, 'send the request as application/json');
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of request as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > MAX_BODY_BYTES) throw new ActionError(413, `the request is over ${MAX_BODY_BYTES} bytes`);
    parts.push(part);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
  } catch {
    throw new ActionError(400, 'the request is not valid JSON');
  }
}
