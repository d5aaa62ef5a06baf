// A client that starts requests and never finishes them cannot make the daemon hold their bytes
// without bound: each identity has a few calls reading a request at once (src/server/request-reads.ts);
// its other calls wait, flow-controlled, and other identities are not affected.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { after, before, describe, it } from 'node:test';

import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { requireRoot } from '../helpers/root';
import { startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;

async function session(name: string, roles: ('reader' | 'writer')[]): Promise<ClientHttp2Session> {
  const files = await t.pki.client({ name, roles });
  const s = connect(`https://${t.address}`, {
    ca: readFileSync(files.caPath),
    cert: readFileSync(files.certificatePath),
    key: readFileSync(files.privateKeyPath),
    minVersion: 'TLSv1.3',
  });
  s.on('error', () => undefined);
  return s;
}

function request(s: ClientHttp2Session, method: string, extra: Record<string, string> = {}): ClientHttp2Stream {
  const stream = s.request({ ':method': 'POST', ':path': `/jobworker.v1.JobService/${method}`, 'content-type': 'application/grpc', te: 'trailers', ...extra });
  stream.on('error', () => undefined);
  return stream;
}

function framed(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** The grpc-status a call ends with. */
function statusOf(stream: ClientHttp2Stream): Promise<number> {
  return new Promise((resolve, reject) => {
    let status: number | undefined;
    const note = (headers: Record<string, unknown>) => {
      if (headers['grpc-status'] !== undefined) status = Number(headers['grpc-status']);
    };
    stream.on('response', note);
    stream.on('trailers', note);
    stream.resume();
    stream.on('close', () => (status === undefined ? reject(new Error(`no grpc-status (rst ${stream.rstCode})`)) : resolve(status)));
  });
}

/** A call that declares a 1.5 MiB request and sends all of it but its last byte. */
function stalled(s: ClientHttp2Session): ClientHttp2Stream {
  const stream = request(s, 'GetJob');
  const header = Buffer.alloc(5);
  header.writeUInt32BE(1536 * 1024, 1);
  stream.write(header);
  stream.write(Buffer.alloc(1536 * 1024 - 1, 0x41));
  return stream;
}

const getJob = framed(pb.GetJobRequest.encode({ jobId: 'no-such-job' }).finish());

describe('requests being received, per identity', requireRoot, () => {
  before(async () => {
    t = await startTestServer('request-reads', { server: { maxRequestReadsPerIdentity: 2 } });
  });
  after(async () => {
    await t?.close();
  });

  it("holds an identity's calls past its unfinished requests until one ends; other identities are served", async () => {
    const bob = await session('bob', ['reader']);
    const carol = await session('carol', ['reader']);
    try {
      const first = stalled(bob);
      const second = stalled(bob);
      // A whole request of bob's now waits for a slot: its deadline passes before it is read
      // (without the bound it is read and answered at once: NOT_FOUND).
      const waiting = request(bob, 'GetJob', { 'grpc-timeout': '1S' });
      waiting.end(getJob);
      assert.equal(await statusOf(waiting), 4 /* DEADLINE_EXCEEDED */);
      // Carol is not affected.
      const carols = request(carol, 'GetJob');
      carols.end(getJob);
      assert.equal(await statusOf(carols), 5 /* NOT_FOUND */);
      // Bob cancels one unfinished request: its slot goes to his next call.
      const firstEnded = statusOf(first).catch(() => 'cancelled');
      first.close(constants.NGHTTP2_CANCEL);
      await firstEnded;
      const next = request(bob, 'GetJob');
      next.end(getJob);
      assert.equal(await statusOf(next), 5 /* NOT_FOUND */);
      second.close(constants.NGHTTP2_CANCEL);
    } finally {
      bob.destroy();
      carol.destroy();
    }
  });

  it("idle reflection streams (waiting for the client's next request) do not hold up the identity's other calls", async () => {
    const dave = await session('dave', ['reader']);
    try {
      const reflection = (): ClientHttp2Stream => {
        const stream = dave.request({ ':method': 'POST', ':path': '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('error', () => undefined);
        return stream;
      };
      // Each asks for a message it is never sent (as a tool that keeps its reflection stream open).
      const idle = [reflection(), reflection(), reflection()];
      const list = framed(Buffer.from([0x3a, 0x01, 0x2a])); // list_services: "*"
      const answered = new Promise<void>((resolve) => idle[0]!.once('data', () => resolve()));
      idle[0]!.write(list);
      await answered; // the server has read from the streams' requests: each asks for more
      const call = request(dave, 'GetJob', { 'grpc-timeout': '5S' });
      call.end(getJob);
      assert.equal(await statusOf(call), 5 /* NOT_FOUND */);
      for (const stream of idle) stream.close(constants.NGHTTP2_CANCEL);
    } finally {
      dave.destroy();
    }
  });

  it('answers a burst of whole requests from one identity, however many wait for a slot', async () => {
    const erin = await session('erin', ['reader']);
    try {
      // Sent before the server looks at them: each call's request is already there when it gets a slot.
      const calls = Array.from({ length: 200 }, () => {
        const call = request(erin, 'GetJob');
        call.end(getJob);
        return statusOf(call);
      });
      assert.deepEqual(new Set(await Promise.all(calls)), new Set([5 /* NOT_FOUND */]));
    } finally {
      erin.destroy();
    }
  });

  it('still reads a request near the 2 MiB cap in full', async () => {
    const alice = await session('alice', ['writer']);
    try {
      const call = request(alice, 'GetJob');
      call.end(framed(pb.GetJobRequest.encode({ jobId: 'x'.repeat(1900 * 1024) }).finish()));
      // Read and decoded: the answer is about the job id, not the transport.
      assert.equal(await statusOf(call), 3 /* INVALID_ARGUMENT */);
    } finally {
      alice.destroy();
    }
  });
});
