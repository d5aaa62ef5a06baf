// Which user owns the other end of a TCP connection made from this host: the kernel lists every TCP
// socket of the network namespace, with its owner's uid, in /proc/net/tcp and /proc/net/tcp6. A
// job on the host's network (the default) is a process of this host, so a connection it makes to
// the daemon is there, owned by the job's uid.
import { promises as fsp } from 'node:fs';
import { endianness } from 'node:os';

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];

export interface Endpoint {
  address: string;
  port: number;
}

/**
 * An address in one spelling for every way of writing it: as IPv6 (an IPv4 address as IPv4-mapped),
 * in WHATWG URL's canonical form; undefined if it cannot be parsed (a scope id, say).
 */
export function canonicalAddress(address: string): string | undefined {
  const v6 = /^\d{1,3}(\.\d{1,3}){3}$/.test(address) ? `::ffff:${address}` : address;
  try {
    return new URL(`http://[${v6}]/`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * An "ADDRESS:PORT" column of /proc/net/tcp or tcp6: the address is the kernel's bytes printed as
 * 32-bit words in this host's byte order (so 127.0.0.1 is 0100007F on x86), the port in hex.
 */
export function endpointOf(column: string | undefined): Endpoint | undefined {
  const colon = column?.lastIndexOf(':') ?? -1;
  if (column === undefined || colon < 0) return undefined;
  const hex = column.slice(0, colon);
  const port = Number.parseInt(column.slice(colon + 1), 16);
  if ((hex.length !== 8 && hex.length !== 32) || !/^[0-9A-Fa-f]+$/.test(hex) || !Number.isInteger(port)) return undefined;
  const bytes = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') for (let word = 0; word < bytes.length; word += 4) bytes.subarray(word, word + 4).reverse();
  if (bytes.length === 4) return { address: bytes.join('.'), port };
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return { address: groups.join(':'), port };
}

function sameEndpoint(column: string | undefined, endpoint: Endpoint, canonical: string | undefined): boolean {
  const listed = endpointOf(column);
  if (listed === undefined || listed.port !== endpoint.port) return false;
  // An address we cannot compare: the ports alone decide (the conservative answer: it may be a job's).
  if (canonical === undefined) return true;
  const other = canonicalAddress(listed.address);
  return other === undefined || other === canonical;
}

/**
 * The uids owning the client end of the connection this process accepted from `peer` on `local`:
 * the socket whose own address and port are `peer` and whose peer's are `local`. Matched by the
 * whole address pair, not the ports alone: a job could otherwise hold a socket of its own from the
 * same port on another address (127.0.0.2, say) and have another client's connection taken for its
 * own. Several answers are possible in principle; none for a peer on another host.
 */
export async function tcpPeerUids(peer: Endpoint, local: Endpoint): Promise<number[]> {
  const peerAddress = canonicalAddress(peer.address);
  const localAddress = canonicalAddress(local.address);
  const uids: number[] = [];
  // The table can hold tens of thousands of lines (a job can make it so): only the lines whose own
  // port is the peer's (":PPPP ", four uppercase hex digits) are split and compared.
  const ownPort = `:${peer.port.toString(16).toUpperCase().padStart(4, '0')} `;
  for (const table of TABLES) {
    const text = await fsp.readFile(table, 'latin1').catch(() => '');
    for (let at = text.indexOf(ownPort); at >= 0; at = text.indexOf(ownPort, at + 1)) {
      const start = text.lastIndexOf('\n', at) + 1;
      const end = text.indexOf('\n', at);
      const line = text.slice(start, end < 0 ? text.length : end);
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
      const fields = line.trim().split(/\s+/);
      if (fields.length < 8 || !sameEndpoint(fields[1], peer, peerAddress) || !sameEndpoint(fields[2], local, localAddress)) continue;
      const uid = Number(fields[7]);
      if (Number.isInteger(uid)) uids.push(uid);
    }
  }
  return uids;
}
