// Which user owns the other end of a TCP connection made from this host: the kernel lists every TCP
// socket of the network namespace, with its owner's uid, in /proc/net/tcp and /proc/net/tcp6. A
// job on the host's network (the default) is a process of this host, so a connection it makes to
// the daemon is there, owned by the job's uid.
import { promises as fsp } from 'node:fs';

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];

/** The port of a "ADDRESS:PORT" column of /proc/net/tcp (hex), or NaN. */
function portOf(column: string | undefined): number {
  return Number.parseInt(column?.slice(column.lastIndexOf(':') + 1) ?? '', 16);
}

/**
 * The uids owning a socket whose own port is `peerPort` and whose peer's port is `localPort`: the
 * client end of a connection this process accepted on `localPort` from `peerPort`. Matched by ports
 * only (the addresses are printed in the kernel's byte order, and ports are what tell connections to
 * one listener apart); several answers are possible in principle, none for a peer on another host.
 */
export async function tcpPeerUids(peerPort: number, localPort: number): Promise<number[]> {
  const uids: number[] = [];
  for (const table of TABLES) {
    const text = await fsp.readFile(table, 'latin1').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
      const fields = line.trim().split(/\s+/);
      if (fields.length < 8 || portOf(fields[1]) !== peerPort || portOf(fields[2]) !== localPort) continue;
      const uid = Number(fields[7]);
      if (Number.isInteger(uid)) uids.push(uid);
    }
  }
  return uids;
}
