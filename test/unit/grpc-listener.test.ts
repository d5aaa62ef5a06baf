// The daemon's own TCP listener (src/server/listener.ts): it serves grpc-js through the connection
// injector and closes sockets whose connection the kernel has closed. The stuck HTTP/2 sessions it
// exists for are intermittent; test/reliability/http2-socket-leak.ts (REPRO_SWEEP=1) and the
// vanishing-clients scenario cover them. Here: the detection, and that live connections are kept.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';

import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';

import { connectionGone, GrpcListener, peerAddressKey, peerName } from '../../src/server/listener';
import { eventually } from '../helpers/poll';

describe('connectionGone', () => {
  it('is false while connected, true once the peer reset a socket nobody reads', async () => {
    const server = createServer({ pauseOnConnect: true });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const accepted = once(server, 'connection') as Promise<[Socket]>;
      const client = netConnect((server.address() as { port: number }).port, '127.0.0.1');
      await once(client, 'connect');
      const [socket] = await accepted;
      assert.equal(connectionGone(socket), false);
      client.resetAndDestroy();
      // Paused: Node does not read, so it does not learn of the reset; the kernel does.
      assert.ok(await eventually(() => connectionGone(socket), 2000, 20), 'the kernel reports the connection gone');
      assert.equal(socket.destroyed, false);
      socket.destroy();
      assert.equal(connectionGone(socket), false, 'a destroyed socket has no handle to ask');
    } finally {
      server.close();
    }
  });
});

describe('GrpcListener', () => {
  it('serves grpc-js calls, keeps live connections on a sweep, closes them all on close()', async () => {
    const identity = (b: Buffer): Buffer => b;
    const server = new Server();
    server.addService(
      { Echo: { path: '/test.Test/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
      { Echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, call.request) },
    );
    const swept: number[] = [];
    const listener = await GrpcListener.start(server, ServerCredentials.createInsecure(), { host: '127.0.0.1', port: 0, onSwept: (n) => swept.push(n) });
    try {
      assert.ok(listener.port > 0);
      const session = http2Connect(`http://127.0.0.1:${listener.port}`);
      session.on('error', () => undefined);
      const stream = session.request({ ':method': 'POST', ':path': '/test.Test/Echo', 'content-type': 'application/grpc', te: 'trailers' });
      const body = Buffer.from('hello');
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      stream.end(frame);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      const [trailers] = (await once(stream, 'trailers')) as [Record<string, string>];
      assert.equal(String(trailers['grpc-status']), '0');
      assert.equal(Buffer.concat(chunks).subarray(5).toString(), 'hello');
      assert.equal(listener.connections, 1);
      assert.equal(listener.sweep(), 0, 'a live connection is kept');
      assert.deepEqual(swept, []);
      const closed = once(session, 'close');
      listener.close();
      server.forceShutdown();
      await closed;
      assert.ok(await eventually(() => listener.connections === 0, 2000, 20));
    } finally {
      listener.close();
      server.forceShutdown();
    }
  });

  /** A TCP connection to the listener from `localAddress` that never starts TLS (what a hostile job can do). */
  async function bareConnection(port: number, localAddress: string): Promise<{ socket: Socket; peer: string; closed: Promise<unknown> }> {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress });
    socket.on('error', () => undefined);
    socket.resume(); // read, so that it learns of the server's close
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await once(socket, 'connect');
    return { socket, peer: peerName(socket.localAddress, socket.localPort), closed };
  }

  it('counts every loopback source address as one peer, and at the cap closes the oldest connection that made no call to make room', async () => {
    const server = new Server();
    const refused: string[] = [];
    const evicted: { address: string; reason: string }[] = [];
    const listener = await GrpcListener.start(server, ServerCredentials.createInsecure(), {
      host: '127.0.0.1', port: 0, maxConnections: 10, maxConnectionsPerAddress: 2,
      onRefused: (_address, reason) => refused.push(reason), onEvicted: (address, reason) => evicted.push({ address, reason }),
    });
    const clients: Socket[] = [];
    try {
      // Each from another address of 127/8, never a handshake: they count as one peer, and each new
      // one pushes out the oldest, so no one can hold the cap with connections that never call.
      const connections = [];
      for (const localAddress of ['127.0.0.2', '127.0.0.3', '127.0.1.4', '127.9.9.9']) {
        const connection = await bareConnection(listener.port, localAddress);
        clients.push(connection.socket);
        connections.push(connection);
      }
      await Promise.all([connections[0]!.closed, connections[1]!.closed]);
      assert.ok(await eventually(() => listener.connections === 2 && evicted.length === 2, 2000, 20));
      assert.deepEqual(evicted.map((e) => e.address), ['loopback', 'loopback']);
      assert.match(evicted[0]!.reason, /^closed to make room \(2 connections open from loopback, the limit per address is 2\): it had made no call$/);
      assert.deepEqual(refused, []);
      assert.equal(connections[2]!.socket.destroyed, false);
      assert.equal(connections[3]!.socket.destroyed, false);
    } finally {
      for (const client of clients) client.destroy();
      listener.close();
      server.forceShutdown();
    }
  });

  for (const cap of ['per address', 'total'] as const) {
    it(`at the ${cap} cap a connection that made a call is never closed to make room; with every one in use, new ones are refused`, async () => {
      const server = new Server();
      const refused: string[] = [];
      const evicted: string[] = [];
      const listener = await GrpcListener.start(server, ServerCredentials.createInsecure(), {
        host: '127.0.0.1', port: 0, ...(cap === 'total' ? { maxConnections: 2 } : { maxConnectionsPerAddress: 2 }),
        onRefused: (_address, reason) => refused.push(reason), onEvicted: (_address, reason) => evicted.push(reason),
      });
      const clients: Socket[] = [];
      const connect = async (localAddress: string) => {
        const connection = await bareConnection(listener.port, localAddress);
        clients.push(connection.socket);
        return connection;
      };
      try {
        const client = await connect('127.0.0.2');
        listener.markInUse(client.peer); // what the authentication interceptor does at its first call
        const idle = await connect('127.0.0.3');
        assert.ok(await eventually(() => listener.connections === 2, 2000, 20));
        const next = await connect('127.0.0.4');
        await idle.closed;
        assert.equal(client.socket.destroyed, false, 'the connection in use is kept');
        assert.equal(evicted.length, 1);
        listener.markInUse(next.peer);
        const late = await connect('127.0.0.5');
        await late.closed;
        assert.equal(refused.length, 1, 'every connection in use: the new one is refused');
        assert.match(refused[0]!, cap === 'total' ? /^2 connections open, the limit is 2$/ : /^2 connections open from loopback, the limit per address is 2$/);
        assert.equal(listener.connections, 2);
        assert.equal(client.socket.destroyed || next.socket.destroyed, false);
      } finally {
        for (const socket of clients) socket.destroy();
        listener.close();
        server.forceShutdown();
      }
    });
  }

  it('peerAddressKey: loopback in every spelling is one key; other addresses are themselves', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::ffff:127.0.0.5', '::1']) assert.equal(peerAddressKey(address), 'loopback', address);
    for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '2001:db8::1', '128.0.0.1', 'unknown']) assert.equal(peerAddressKey(address), address);
  });
});
