// The client's log-stream connection (src/client/log-session.ts) against a server that misbehaves
// on purpose: a plain Node HTTP/2 server over real mutual TLS that answers with resets, wrong HTTP
// statuses, cut messages and dropped connections. Each ends the call as a grpc-js call would, never
// hangs, and messages already received are delivered first.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { ClientError } from '../../src/client/client-error';
import { connectionCredentials } from '../../src/client/credentials';
import { frameMessage } from '../../src/client/grpc-frames';
import { LogSession } from '../../src/client/log-session';
import { createTestPki, type TestPki } from '../helpers/pki';

type Handler = (stream: http2.ServerHttp2Stream) => void;

let pki: TestPki;
let server: http2.Http2SecureServer;
let port: number;
let handler: Handler = () => undefined;
let session: LogSession;

async function newSession(address: string, connectTimeoutMs = 10_000): Promise<LogSession> {
  const files = await pki.client({ name: 'protocol', roles: ['reader'] });
  const { tls } = await connectionCredentials(files);
  return new LogSession({ address, tls, connectTimeoutMs, maxMessageBytes: 1 << 20 });
}

/** The messages a call yields, and how it ended: 'OK' or the ClientError's code name and message. */
async function outcome(from: LogSession, signal?: AbortSignal): Promise<{ messages: string[]; end: string }> {
  const messages: string[] = [];
  try {
    for await (const message of from.serverStream('/test.Service/Stream', Buffer.from('request'), signal)) messages.push(message.toString());
    return { messages, end: 'OK' };
  } catch (error) {
    assert.ok(error instanceof ClientError, `not a ClientError: ${String(error)}`);
    return { messages, end: `${error.codeName}: ${error.details}` };
  }
}

function grpcHeaders(): http2.OutgoingHttpHeaders {
  return { ':status': 200, 'content-type': 'application/grpc' };
}

describe('log-session protocol: a misbehaving server', () => {
  before(async () => {
    pki = await createTestPki();
    const files = await pki.server();
    server = http2.createSecureServer({
      cert: readFileSync(files.certificatePath),
      key: readFileSync(files.privateKeyPath),
      ca: readFileSync(files.caPath),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      handler(stream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    session = await newSession(`localhost:${port}`);
  });
  after(async () => {
    session?.close();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    pki?.remove();
  });

  it('messages then OK trailers: every message, in order', async () => {
    handler = (stream) => {
      stream.respond(grpcHeaders(), { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.write(frameMessage(Buffer.from('one')));
      stream.end(frameMessage(Buffer.from('two')));
    };
    assert.deepEqual(await outcome(session), { messages: ['one', 'two'], end: 'OK' });
  });

  it('a status in the headers (Trailers-Only), percent-encoded message: that status', async () => {
    handler = (stream) => stream.respond({ ...grpcHeaders(), 'grpc-status': '5', 'grpc-message': 'job%20x%20not%20found' }, { endStream: true });
    assert.deepEqual(await outcome(session), { messages: [], end: 'NOT_FOUND: job x not found' });
  });

  it('a message, then the stream ended without a status: the message, then INTERNAL as grpc-js says it', async () => {
    // Node's close(code) ends a stream whose client has sent all of its request with END_STREAM,
    // not a reset (how each reset code maps is checked in test/unit/grpc-frames.test.ts).
    handler = (stream) => {
      stream.respond(grpcHeaders());
      stream.write(frameMessage(Buffer.from('before')), () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    };
    assert.deepEqual(await outcome(session), { messages: ['before'], end: 'INTERNAL: Received RST_STREAM with code 0 (Call ended without gRPC status)' });
  });

  it('HTTP 404 instead of a gRPC answer: UNIMPLEMENTED', async () => {
    handler = (stream) => stream.respond({ ':status': 404 }, { endStream: true });
    const { end } = await outcome(session);
    assert.match(end, /^UNIMPLEMENTED: the server answered HTTP 404/);
  });

  it('OK trailers with half a message (cut right after its prefix): INTERNAL, not OK', async () => {
    handler = (stream) => {
      stream.respond(grpcHeaders(), { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.write(frameMessage(Buffer.from('whole')));
      stream.end(frameMessage(Buffer.from('cut')).subarray(0, 5));
    };
    assert.deepEqual(await outcome(session), { messages: ['whole'], end: 'INTERNAL: the stream ended inside a message (5 bytes of it)' });
  });

  it('the connection dropped mid-stream: the messages received, then UNAVAILABLE; the next call reconnects', async () => {
    handler = (stream) => {
      stream.respond(grpcHeaders());
      stream.write(frameMessage(Buffer.from('received')), () => stream.session?.destroy()); // no GOAWAY, no reset: the connection just ends
    };
    const { messages, end } = await outcome(session);
    assert.deepEqual(messages, ['received']);
    assert.match(end, /^UNAVAILABLE: /);
    handler = (stream) => stream.respond({ ...grpcHeaders(), 'grpc-status': '0' }, { endStream: true });
    assert.deepEqual(await outcome(session), { messages: [], end: 'OK' });
  });

  describe('a server that accepts TCP and never answers the TLS handshake', () => {
    let silent: TcpServer;
    const sockets: Socket[] = [];
    let silentPort: number;
    before(async () => {
      silent = createTcpServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      silentPort = (silent.address() as { port: number }).port;
    });
    after(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });

    it('an abort while connecting ends the call at once with CANCELLED', async () => {
      const waiting = await newSession(`localhost:${silentPort}`, 60_000);
      try {
        const abort = new AbortController();
        const accepted = once(silent, 'connection');
        const call = outcome(waiting, abort.signal);
        await accepted; // TCP is up; TLS never will be
        abort.abort();
        assert.deepEqual(await call, { messages: [], end: 'CANCELLED: Cancelled on client' });
      } finally {
        waiting.close();
      }
    });

    it('no abort: UNAVAILABLE once the connect timeout passes', async () => {
      const waiting = await newSession(`localhost:${silentPort}`, 300);
      try {
        const { end } = await outcome(waiting);
        assert.equal(end, `UNAVAILABLE: connecting to localhost:${silentPort}: no answer in 300 ms`);
      } finally {
        waiting.close();
      }
    });
  });
});
