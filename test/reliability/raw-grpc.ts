// gRPC calls on a raw HTTP/2-over-TLS session, for clients that misbehave on purpose: open many
// streams on one connection and never read them (HTTP/2 flow control then holds the server back),
// and see the status a stream ended with once reading resumes.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as http2Connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';

import type { TlsFilePaths } from '../../src/pki';

/** A length-prefixed gRPC message frame. */
export function grpcFrame(body: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(frame, 5);
  return frame;
}

export interface PemMaterial {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export function pemOf(files: TlsFilePaths): PemMaterial {
  return { ca: readFileSync(files.caPath), cert: readFileSync(files.certificatePath), key: readFileSync(files.privateKeyPath) };
}

export async function rawSession(port: number, pem: PemMaterial): Promise<ClientHttp2Session> {
  const tls = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], ...pem, minVersion: 'TLSv1.3' });
  await once(tls, 'secureConnect');
  const session = http2Connect('https://localhost', { createConnection: () => tls });
  session.on('error', () => undefined);
  return session;
}

export interface RawCall {
  stream: ClientHttp2Stream;
  /** Resolves once the server answered: admitted (headers) or refused (a trailers-only status). */
  first: Promise<{ kind: 'data' } | { kind: 'status'; code: number }>;
  /** The grpc-status the call ends with (read only once the stream is read: call `drain`). */
  status: Promise<number>;
  /** Reads (and discards) everything from now on. */
  drain(): void;
}

/** Starts a call; `end` half-closes the request side (false: a bidi stream left open). Nothing is read until drain(). */
export function rawCall(session: ClientHttp2Session, path: string, body: Uint8Array, end = true): RawCall {
  const stream = session.request({ [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: path, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined);
  if (end) stream.end(grpcFrame(body));
  else stream.write(grpcFrame(body));
  const statusOf = (headers: Record<string, unknown>) => (headers['grpc-status'] === undefined ? undefined : Number(headers['grpc-status']));
  const status = new Promise<number>((resolve) => {
    stream.on('response', (headers) => {
      const code = statusOf(headers);
      if (code !== undefined) resolve(code); // trailers-only answer: a refusal
    });
    stream.on('trailers', (trailers) => resolve(statusOf(trailers) ?? -1));
    stream.on('close', () => resolve(-1));
  });
  const first = new Promise<{ kind: 'data' } | { kind: 'status'; code: number }>((resolve) => {
    // Response headers without a status: the call was admitted and answers (a refusal is trailers-only).
    stream.once('response', (headers) => {
      const code = statusOf(headers);
      resolve(code === undefined ? { kind: 'data' } : { kind: 'status', code });
    });
    void status.then((code) => resolve({ kind: 'status', code }));
  });
  return { stream, first, status, drain: () => stream.on('data', () => undefined) };
}
