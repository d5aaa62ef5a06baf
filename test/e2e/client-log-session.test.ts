// The library's log streams run on a connection of their own (src/client/log-session.ts), not on
// grpc-js: the same answers as a grpc-js call (codes, messages), IP addresses without SNI, and a
// connection that drops mid-stream ends the stream with UNAVAILABLE instead of leaving it hanging.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { Metadata, type ServiceError } from '@grpc/grpc-js';

import { decodeStreamLogsResponse } from '../../src/api/stream-logs-codec';
import { ClientError, JobworkerClient } from '../../src/client';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { rawChannelCredentialsFromFiles } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;
let client: JobworkerClient;
let rawStub: pb.JobServiceClient;
/** The same identity as rawStub, through the library. */
let sameAsRaw: JobworkerClient;
let othersJobId: string;

/** (code, details) of a StreamLogs call made through grpc-js. */
function grpcJsAnswer(request: pb.StreamLogsRequest): Promise<{ code: number; details: string }> {
  const method = pb.JobServiceService.streamLogs;
  const call = rawStub.makeServerStreamRequest(method.path, method.requestSerialize, decodeStreamLogsResponse, request, new Metadata(), {});
  return new Promise((resolve) => {
    call.on('data', () => undefined);
    call.on('error', (error: ServiceError) => resolve({ code: error.code, details: error.details }));
    call.on('end', () => resolve({ code: 0, details: '' }));
  });
}

async function libraryAnswer(c: JobworkerClient, request: pb.StreamLogsRequest): Promise<{ code: number; details: string }> {
  try {
    for await (const message of c.streamLogs({ jobId: request.jobId, follow: request.follow, tailLines: request.tailLines })) void message;
    return { code: 0, details: '' };
  } catch (error) {
    assert.ok(error instanceof ClientError, `not a ClientError: ${String(error)}`);
    return { code: error.code, details: error.details };
  }
}

/** A TCP relay to the daemon whose connections the test can cut. */
class CuttableRelay {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  constructor(targetPort: number) {
    this.#server = createServer((inbound) => {
      const outbound = connect(targetPort, '127.0.0.1');
      for (const socket of [inbound, outbound]) {
        this.#sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => this.#sockets.delete(socket));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
  }
  listen(): Promise<number> {
    return new Promise((resolve) => this.#server.listen(0, '127.0.0.1', () => resolve((this.#server.address() as { port: number }).port)));
  }
  cut(): void {
    for (const socket of this.#sockets) socket.destroy();
  }
  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

describe('log streams on the client’s own connection', requireRoot, () => {
  before(async () => {
    t = await startTestServer('log-session');
    client = await t.client('streams', ['writer']);
    const files = await t.pki.client({ name: 'streams-raw', roles: ['writer'] });
    rawStub = t.stub(rawChannelCredentialsFromFiles(files));
    sameAsRaw = await t.client('streams-raw', ['writer']);
    othersJobId = (await client.startJob({ command: 'true' })).id;
  });
  after(async () => {
    await t?.close();
  });

  const refusals: [string, () => Partial<pb.StreamLogsRequest>][] = [
    ['an unknown job', () => ({ jobId: '0b4e7f5e-3c1d-4a8e-9f2b-6d5c4b3a2f10' })],
    ['a job id that is not one, with characters gRPC percent-encodes', () => ({ jobId: 'ü %zz\n"' })],
    ["another writer's job", () => ({ jobId: othersJobId })],
  ];
  for (const [name, fields] of refusals) {
    it(`${name}: the same code and message as through grpc-js`, async () => {
      const request = pb.StreamLogsRequest.fromPartial(fields());
      const expected = await grpcJsAnswer(request);
      assert.notEqual(expected.code, 0);
      assert.deepEqual(await libraryAnswer(sameAsRaw, request), expected);
    });
  }

  it('streams over an IP address (no SNI; the certificate names the IP) the same bytes and the final status', async () => {
    const files = await t.pki.client({ name: 'streams-ip', roles: ['writer'] });
    const byIp = await JobworkerClient.connect({ address: `127.0.0.1:${t.server.port}`, tls: files });
    try {
      const job = await byIp.startJob({ command: 'sh', args: ['-c', 'printf out; printf err >&2'] });
      let out = '';
      let err = '';
      let final: string | undefined;
      for await (const message of byIp.streamLogs({ jobId: job.id, follow: true })) {
        for (const chunk of message.chunks) if (chunk.stream === 'stdout') out += chunk.data.toString(); else err += chunk.data.toString();
        if (message.finalStatus !== null) final = message.finalStatus.state;
      }
      assert.deepEqual({ out, err, final }, { out: 'out', err: 'err', final: 'exited' });
    } finally {
      byIp.close();
    }
  });

  it('with reuseBuffers: every byte, in order, when each chunk is copied before the next message; and the memory is reused', async () => {
    // ~2.9 MB of known output: a dozen messages of ~256 KiB each.
    const expected = Array.from({ length: 400_000 }, (_, i) => `${i + 1}\n`).join('');
    const job = await client.startJob({ command: 'seq', args: ['1', '400000'] });
    // Read once to the end first: the replay below then comes in full messages of ~256 KiB.
    for await (const message of client.streamLogs({ jobId: job.id, follow: true })) void message;
    const copies: Buffer[] = [];
    const backings = new Set<ArrayBufferLike>();
    let messages = 0;
    for await (const message of client.streamLogs({ jobId: job.id, follow: false }, undefined, { reuseBuffers: true })) {
      messages++;
      for (const chunk of message.chunks) {
        copies.push(Buffer.from(chunk.data));
        backings.add(chunk.data.buffer);
      }
    }
    assert.equal(Buffer.concat(copies).toString(), expected);
    assert.ok(messages >= 10, `${messages} messages`);
    assert.ok(backings.size < messages / 2, `${backings.size} buffers for ${messages} messages: reused`);
  });

  it('a connection cut mid-stream ends the follower with UNAVAILABLE, and the next stream reconnects', async () => {
    const relay = new CuttableRelay(t.server.port);
    const files = await t.pki.client({ name: 'streams', roles: ['writer'] }); // the job's owner
    const relayed = await JobworkerClient.connect({ address: `localhost:${await relay.listen()}`, tls: files });
    const job = await client.startJob({ command: 'sh', args: ['-c', 'echo started; exec sleep 1000'] });
    try {
      const outcome = (async () => {
        for await (const message of relayed.streamLogs({ jobId: job.id, follow: true })) {
          if (message.chunks.some((chunk) => chunk.data.toString().includes('started'))) relay.cut();
        }
      })();
      await assert.rejects(outcome, (error: unknown) => error instanceof ClientError && error.codeName === 'UNAVAILABLE');
      let again = '';
      for await (const message of relayed.streamLogs({ jobId: job.id, follow: false })) for (const chunk of message.chunks) again += chunk.data.toString();
      assert.equal(again, 'started\n');
    } finally {
      relayed.close();
      await relay.close();
      await client.stopJob(job.id, { graceMs: 0 });
    }
  });
});
