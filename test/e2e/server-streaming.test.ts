// StreamLogs over real mTLS: many clients get identical bytes; options; no leak when clients vanish.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import type { JobworkerClient, JobView, LogChunkView, StreamLogsRequest } from '../../src/client';
import { requireRoot } from '../helpers/root';
import { startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;
let client: JobworkerClient;

interface Received {
  stdout: string;
  stderr: string;
  final: JobView | undefined;
  hash: string;
  bytes: number;
}

async function receive(c: JobworkerClient, request: StreamLogsRequest): Promise<Received> {
  const hash = createHash('sha256');
  let stdout = '';
  let stderr = '';
  let bytes = 0;
  let final: JobView | undefined;
  for await (const message of c.streamLogs(request)) {
    for (const chunk of message.chunks) {
      if (chunk.stream === 'stdout') {
        hash.update(chunk.data);
        bytes += chunk.data.length;
        if (bytes < 1 << 16) stdout += chunk.data.toString();
      } else if (chunk.stream === 'stderr') stderr += chunk.data.toString();
    }
    if (message.finalStatus) final = message.finalStatus;
  }
  return { stdout, stderr, final, hash: hash.digest('hex'), bytes };
}

function activeStreams(): Promise<number> {
  return t.server.metrics.registry.getSingleMetricAsString('jobworker_active_streams').then((text) => {
    return [...text.matchAll(/^jobworker_active_streams\{rpc="StreamLogs"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  });
}

/** StreamLogs messages sent so far, by source: read (and encoded) by the stream, or shared by another follower. */
async function logMessages(): Promise<{ read: number; shared: number }> {
  const text = await t.server.metrics.registry.getSingleMetricAsString('jobworker_log_messages_total');
  const count = (source: string) => Number(new RegExp(`^jobworker_log_messages_total\\{source="${source}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { read: count('read'), shared: count('shared') };
}

/** Per stream, the SHA-256 of its bytes and how many. */
async function streamDigests(c: JobworkerClient, request: StreamLogsRequest): Promise<Record<'stdout' | 'stderr', { hash: string; bytes: number }>> {
  const hashes = { stdout: createHash('sha256'), stderr: createHash('sha256') };
  const bytes = { stdout: 0, stderr: 0 };
  for await (const message of c.streamLogs(request)) {
    for (const chunk of message.chunks) {
      if (chunk.stream !== 'stdout' && chunk.stream !== 'stderr') continue;
      hashes[chunk.stream].update(chunk.data);
      bytes[chunk.stream] += chunk.data.length;
    }
  }
  return { stdout: { hash: hashes.stdout.digest('hex'), bytes: bytes.stdout }, stderr: { hash: hashes.stderr.digest('hex'), bytes: bytes.stderr } };
}

describe('streaming output', requireRoot, () => {
  before(async () => {
    t = await startTestServer('streaming');
    client = await t.client('streamer', ['writer']);
  });
  after(async () => {
    await t?.close();
  });

  it('50 concurrent clients streaming one job from the beginning get identical bytes and the final status', { timeout: 120_000 }, async () => {
    const job = await client.startJob({ command: 'head', args: ['-c', String(20 << 20), '/dev/urandom'] });
    const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => t.client(`streamer`, ['reader']).then((c) => ({ c, i }))));
    const results = await Promise.all(clients.map(({ c }) => receive(c, { jobId: job.id, follow: true })));
    for (const result of results) {
      assert.equal(result.bytes, 20 << 20);
      assert.equal(result.hash, results[0]!.hash);
      assert.equal(result.final?.state, 'exited');
      assert.equal(result.final?.outcome.exitCode, 0);
    }
    assert.equal(await activeStreams(), 0);
  });

  it('followers of one job share encoded messages, and each still gets exactly its streams from its own start', { timeout: 120_000 }, async () => {
    const job = await client.startJob({ command: 'sh', args: ['-c', 'head -c 6000000 /dev/urandom; head -c 3000000 /dev/urandom >&2; head -c 5000000 /dev/urandom'] });
    const before = await logMessages();
    const readers = await Promise.all(Array.from({ length: 6 }, () => t.client('streamer', ['reader'])));
    const kinds: StreamLogsRequest[] = [{ jobId: job.id, follow: true }, { jobId: job.id, follow: true, streams: ['stdout'] }, { jobId: job.id, follow: true, streams: ['stderr'] }, { jobId: job.id, follow: true, streams: ['stderr', 'stdout'] }];
    const live = await Promise.all(kinds.flatMap((request) => readers.map((c) => streamDigests(c, request))));
    // The same bytes a lone reader of the finished log gets (nobody to share with then).
    const alone = await streamDigests(client, { jobId: job.id });
    assert.equal(alone.stdout.bytes, 11_000_000);
    assert.equal(alone.stderr.bytes, 3_000_000);
    for (const [i, got] of live.entries()) {
      const streams = kinds[Math.floor(i / readers.length)]!.streams ?? ['stdout', 'stderr'];
      if (streams.includes('stdout')) assert.deepEqual(got.stdout, alone.stdout, `follower ${i} stdout`);
      else assert.equal(got.stdout.bytes, 0);
      if (streams.includes('stderr')) assert.deepEqual(got.stderr, alone.stderr, `follower ${i} stderr`);
      else assert.equal(got.stderr.bytes, 0);
    }

    // Followers starting part-way (an offset, a tail) line up with those from the start, on the finished log.
    const offsets: number[] = [];
    for await (const message of client.streamLogs({ jobId: job.id, streams: ['stdout'] })) offsets.push(...message.chunks.map((c) => c.offset));
    const middle = offsets[Math.floor(offsets.length / 2)]!;
    const suffix = await streamDigests(client, { jobId: job.id, fromOffset: middle });
    const mixed = await Promise.all(
      readers.flatMap((c) => [
        streamDigests(c, { jobId: job.id, follow: true }),
        streamDigests(c, { jobId: job.id, follow: true, fromOffset: middle }),
        streamDigests(c, { jobId: job.id, follow: true, tailLines: 1000 }),
      ]),
    );
    for (const [i, got] of mixed.entries()) {
      if (i % 3 === 0) assert.deepEqual(got, alone);
      else if (i % 3 === 1) assert.deepEqual(got, suffix);
      else assert.deepEqual(got, mixed[2]);
    }
    const after = await logMessages();
    // 36 streams of ~14 MB each (~56 messages): most of those messages were another follower's.
    assert.ok(after.shared - before.shared > (after.read - before.read) / 2, `shared ${after.shared - before.shared}, read ${after.read - before.read}`);

    // Streams without `follow` never take another's messages: theirs end where the log ended when
    // they began, and a follower's may go further.
    const unfollowed = await Promise.all(readers.map((c) => streamDigests(c, { jobId: job.id })));
    for (const got of unfollowed) assert.deepEqual(got, alone);
    assert.equal((await logMessages()).shared, after.shared);
    for (const c of readers) c.close();
  });

  it('followers served from each other\'s messages read on to the last byte when the job is removed', { timeout: 120_000 }, async () => {
    // Within what the daemon keeps of one job's shared messages (32 MiB), and well beyond what flow
    // control lets a follower's side run ahead of its client (a few MiB).
    const size = 24 << 20;
    const job = await client.startJob({ command: 'sh', args: ['-c', `head -c ${size} /dev/urandom; echo written >&2; exec sleep 1000`] });
    // All of it is in the log before the followers start.
    for await (const message of client.streamLogs({ jobId: job.id, follow: true, streams: ['stderr'] })) {
      if (message.chunks.some((chunk) => chunk.data.toString().includes('written'))) break;
    }
    const follower = async () => {
      const c = await t.client('streamer', ['reader']);
      const messages = c.streamLogs({ jobId: job.id, follow: true, streams: ['stdout'] })[Symbol.asyncIterator]();
      const got = { hash: createHash('sha256'), bytes: 0, final: null as JobView | null, close: () => c.close() };
      /** Reads on until `bytes` are in (or the stream ends); false at its end. */
      const readTo = async (bytes: number): Promise<boolean> => {
        while (got.bytes < bytes) {
          const next = await messages.next();
          if (next.done === true) return false;
          for (const chunk of next.value.chunks) {
            got.hash.update(chunk.data);
            got.bytes += chunk.data.length;
          }
          if (next.value.finalStatus !== null) got.final = next.value.finalStatus;
        }
        return true;
      };
      return { got, readTo };
    };
    // One follower takes one message and stops reading (flow control holds its side back); another
    // reads two thirds of the output and stops: the first one's side will send its messages, then
    // have to read the rest itself.
    const behind = await follower();
    await behind.readTo(1);
    const ahead = await follower();
    await ahead.readTo((size * 2) / 3);
    await client.stopJob(job.id, { graceMs: 0 });
    await client.removeJob(job.id);
    for (const { got, readTo } of [behind, ahead]) {
      while (await readTo(Infinity));
      assert.equal(got.bytes, size);
      assert.equal(got.final?.state, 'stopped');
      got.close();
    }
    assert.equal(behind.got.hash.digest('hex'), ahead.got.hash.digest('hex'));
  });

  it('selects streams, resumes from an offset, tails lines, and filters by time', async () => {
    const job = await client.startJob({ command: 'sh', args: ['-c', 'for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; sleep 0.05; done'] });
    const all = await receive(client, { jobId: job.id, follow: true });
    assert.equal(all.stdout, 'out1\nout2\nout3\nout4\nout5\n');
    assert.equal(all.stderr, 'err1\nerr2\nerr3\nerr4\nerr5\n');
    const onlyErr = await receive(client, { jobId: job.id, streams: ['stderr'] });
    assert.equal(onlyErr.stdout, '');
    assert.equal(onlyErr.stderr, all.stderr);
    const tail = await receive(client, { jobId: job.id, tailLines: 2, streams: ['stdout'] });
    assert.equal(tail.stdout, 'out4\nout5\n');

    const chunks: LogChunkView[] = [];
    for await (const message of client.streamLogs({ jobId: job.id })) chunks.push(...message.chunks);
    const third = chunks[2]!;
    const resumed = await receive(client, { jobId: job.id, fromOffset: third.offset });
    assert.equal(resumed.stdout + resumed.stderr, chunks.slice(2).filter((c) => c.stream === 'stdout').map((c) => c.data.toString()).join('') + chunks.slice(2).filter((c) => c.stream === 'stderr').map((c) => c.data.toString()).join(''));
    const since = await receive(client, { jobId: job.id, sinceUnixMicros: chunks.at(-1)!.timeUnixMicros });
    assert.ok(since.stdout.length + since.stderr.length <= 5);
    assert.ok(chunks.every((c) => c.timeUnixMicros > 1.7e15 && c.nextOffset > c.offset));
  });

  it('a client that disconnects mid-stream leaves no stream behind, and the job is unaffected', async () => {
    const job = await client.startJob({ command: 'sh', args: ['-c', 'while :; do echo tick; sleep 0.01; done'] });
    const quitter = await t.client('streamer', ['reader']);
    let seen = 0;
    for await (const message of quitter.streamLogs({ jobId: job.id, follow: true })) {
      seen += message.chunks.length;
      if (seen >= 3) break; // cancels the call
    }
    quitter.close(); // and the whole connection, like a killed client
    // The server notices and ends its side: wait for the metric to drop (events, not time).
    for (let i = 0; (await activeStreams()) !== 0; i++) {
      assert.ok(i < 200, 'the stream was never cleaned up');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await client.getJob(job.id)).state, 'running');
    await client.stopJob(job.id, { graceMs: 0 });
  });

  it('following a running job ends with its final status when it is stopped', async () => {
    const job = await client.startJob({ command: 'sh', args: ['-c', 'echo started; exec sleep 1000'] });
    const following = receive(client, { jobId: job.id, follow: true });
    const stopper = await t.client('streamer', ['writer']);
    for await (const message of stopper.streamLogs({ jobId: job.id, follow: true })) {
      if (message.chunks.some((c) => c.data.toString().includes('started'))) break;
    }
    // A grace long enough that only the SIGTERM (forwarded by the job's init) can end it.
    await stopper.stopJob(job.id, { graceMs: 30_000 });
    const result = await following;
    assert.equal(result.stdout, 'started\n');
    assert.equal(result.final?.state, 'stopped');
    assert.equal(result.final?.outcome.signal, 'SIGTERM');
  });
});
