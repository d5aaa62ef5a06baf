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

import { connectionGone, GrpcListener } from '../../src/server/listener';
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
});
