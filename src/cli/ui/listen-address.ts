// Where the UI listens, and the names a browser may use for it (the Host and Origin headers the
// access guard accepts). Loopback unless asked otherwise: the page is plain HTTP.
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';

export interface ListenAddress {
  /** An IP literal (IPv6 without brackets). */
  host: string;
  port: number;
}

/** "127.0.0.1:8080", "[::1]:0", "localhost:8080", "8080" (loopback), "0.0.0.0:8080"; a reason on failure. */
export function parseListenAddress(text: string): ListenAddress | string {
  const match = /^(?:(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):)?(\d{1,5})$/.exec(text.trim());
  if (match === null) return `expected HOST:PORT (an IP address or localhost, and a port; 0 picks a free one), got ${JSON.stringify(text)}`;
  const port = Number(match[2]);
  if (port > 65535) return `the port must be from 0 to 65535, got ${port}`;
  let host = match[1] ?? '127.0.0.1';
  if (host === 'localhost') host = '127.0.0.1';
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (isIP(host) === 0) return `${JSON.stringify(host)} is not an IP address (the UI listens on an address, not a name; localhost means 127.0.0.1)`;
  return { host, port };
}

export function isLoopback(host: string): boolean {
  return host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const withPort = (host: string, port: number) => `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;

/** How a browser writes this server's address: the URL's host part. */
export function urlHost(address: ListenAddress): string {
  const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  return withPort(host, address.port);
}

/**
 * Host header values that name this server (lower case): its address, and for a wildcard also
 * localhost, every local address and the host's name. Not localhost for one address: localhost may
 * resolve to the other loopback family, where another local user's server could listen on the same
 * port; a page it served would have this page's origin (http://localhost:PORT), and so its storage,
 * the session included.
 */
export function acceptedHosts(address: ListenAddress): Set<string> {
  const names = new Set<string>([address.host]);
  if (address.host === '0.0.0.0' || address.host === '::') {
    names.add('localhost');
    names.add(hostname().toLowerCase());
    for (const entries of Object.values(networkInterfaces())) {
      for (const entry of entries ?? []) if (address.host === '::' || entry.family === 'IPv4') names.add(entry.address);
    }
  }
  const hosts = new Set<string>();
  for (const name of names) {
    hosts.add(withPort(name, address.port).toLowerCase());
    if (address.port === 80) hosts.add((isIP(name) === 6 ? `[${name}]` : name).toLowerCase()); // browsers leave out the default port
  }
  return hosts;
}
