// The metrics listener answers 403 to a connection whose other end a job's uid owns, and only to
// that connection: the kernel's socket table is matched by address and port, both ends.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import { endianness } from 'node:os';
import { describe, it } from 'node:test';

import { Registry } from 'prom-client';

import { MetricsListener } from '../../src/daemon/metrics-listener';
import { canonicalAddress, endpointOf } from '../../src/daemon/socket-owner';
import type { ServerMetrics } from '../../src/server';
import { requireRoot } from '../helpers/root';

/** GET /metrics from localAddress:localPort; resolves with the status. */
function get(port: number, localAddress: string, localPort?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', localAddress, ...(localPort === undefined ? {} : { localPort }), agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('socket-owner', () => {
  it('reads /proc/net/tcp addresses in the kernel byte order and compares every spelling as one', () => {
    if (endianness() === 'LE') {
      assert.deepEqual(endpointOf('0100007F:1F90'), { address: '127.0.0.1', port: 8080 });
      assert.deepEqual(endpointOf('00000000000000000000000001000000:0050'), { address: '0:0:0:0:0:0:0:1', port: 80 });
      assert.deepEqual(endpointOf('0000000000000000FFFF00000100007F:0050'), { address: '0:0:0:0:0:ffff:7f00:1', port: 80 });
    }
    assert.equal(canonicalAddress('127.0.0.1'), canonicalAddress('::ffff:127.0.0.1'));
    assert.equal(canonicalAddress('0:0:0:0:0:ffff:7f00:1'), canonicalAddress('::ffff:127.0.0.1'));
    assert.equal(canonicalAddress('0:0:0:0:0:0:0:1'), canonicalAddress('::1'));
    assert.notEqual(canonicalAddress('127.0.0.2'), canonicalAddress('127.0.0.1'));
  });
});

describe('MetricsListener', requireRoot, () => {
  it("answers 403 to a job's own connection, not to another client's from the same port on another address", async () => {
    const jobUid = 0x6ffc_0000 + (process.pid % 0x1000);
    const metrics = await MetricsListener.start({ registry: new Registry() } as unknown as ServerMetrics, '127.0.0.1:0', { isJobUid: (uid) => uid === jobUid });
    // "A job": a process of that uid holding a connection to the listener from 127.0.0.2, which
    // prints its port, then makes a request of its own and prints the status.
    const script = `
      const net = require('net');
      const s = net.connect({ host: '127.0.0.1', port: ${metrics.port}, localAddress: '127.0.0.2' }, () => console.log(s.localPort));
      s.on('data', (d) => console.log(String(d).split(' ')[1]));
      process.stdin.on('data', () => s.write('GET /metrics HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n'));
      process.stdin.on('end', () => process.exit(0));`;
    const job = spawn(process.execPath, ['-e', script], { uid: jobUid, gid: jobUid, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const lines: string[] = [];
      job.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter((l) => l !== '')));
      while (lines.length < 1) await once(job.stdout, 'data');
      // The host's client, from the job's port on another loopback address, while the job's
      // connection is open: served.
      assert.equal(await get(metrics.port, '127.0.0.1', Number(lines[0])), 200);
      job.stdin.write('\n');
      while (lines.length < 2) await once(job.stdout, 'data');
      assert.equal(lines[1], '403', "the job's own request");
    } finally {
      job.stdin.end();
      await once(job, 'exit');
      await metrics.close();
    }
  });

  it('holds a bounded number of connections: idle ones beyond it are closed at accept', async () => {
    const metrics = await MetricsListener.start({ registry: new Registry() } as unknown as ServerMetrics, '127.0.0.1:0', { maxConnections: 8 });
    const sockets: Socket[] = [];
    try {
      const fdsBefore = readdirSync('/proc/self/fd').length;
      const closed: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        const socket = netConnect({ host: '127.0.0.1', port: metrics.port });
        socket.on('error', () => undefined);
        socket.resume();
        closed.push(once(socket, 'close'));
        sockets.push(socket);
        await once(socket, 'connect');
      }
      // 20 client sockets here, and at most 8 of the listener's: the 12 beyond are closed.
      await Promise.all(closed.slice(8));
      assert.ok(readdirSync('/proc/self/fd').length - fdsBefore <= 20 + 8, 'the listener holds at most 8 connections');
      assert.equal(sockets.slice(0, 8).filter((s) => s.destroyed).length, 0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await metrics.close();
    }
  });
});
