// Resuming StreamLogs at any chunk's next_offset, through the real daemon process over mTLS: a job
// writes big and small pieces to stdout and stderr; the whole log is streamed once, then the stream
// is resumed at EVERY chunk boundary and must give, per stream, exactly the bytes after that chunk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { JobworkerClient, type LogStreamName } from '../../src/client';
import { startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';

let pki: TestPki;
let dir: string;
// The job's input: not under /tmp, which is private to each job (its dynamic uid reads it).
let inputDir: string;
let daemon: RunningTestDaemon;
let client: JobworkerClient;

interface Chunk {
  stream: LogStreamName;
  data: Buffer;
  offset: number;
  nextOffset: number;
}

async function chunksFrom(fromOffset: number, jobId: string): Promise<Chunk[]> {
  const chunks: Chunk[] = [];
  for await (const message of client.streamLogs({ jobId, fromOffset })) {
    for (const c of message.chunks) chunks.push({ stream: c.stream, data: Buffer.from(c.data), offset: c.offset, nextOffset: c.nextOffset });
  }
  return chunks;
}

function bytesOf(chunks: Chunk[], stream: LogStreamName): Buffer {
  return Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => c.data));
}

describe('resuming StreamLogs', requireRoot, () => {
  before(async () => {
    pki = await createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-resume-test-'));
    inputDir = mkdtempSync(path.join(process.cwd(), '.resume-test-input-'));
    chmodSync(inputDir, 0o755);
    daemon = await startTlsDaemon('resume', await pki.server(), dir, mkdtempSync(path.join(dir, 'state-')));
    client = await JobworkerClient.connect({ address: daemon.address, tls: await pki.client({ name: 'resumer', roles: ['writer'] }), callTimeoutMs: 20_000 });
  });
  after(async () => {
    client?.close();
    await daemon?.stop();
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
    if (inputDir !== undefined) rmSync(inputDir, { recursive: true, force: true });
  });

  it('at every chunk boundary of a mixed stdout/stderr log of big and small writes gives exactly the rest, per stream', { timeout: 300_000 }, async () => {
    const data = randomBytes(1 << 20);
    const file = path.join(inputDir, 'data');
    writeFileSync(file, data, { mode: 0o644 });
    // Single writes of 1 MiB and 768 KiB (dd bs=…), after which the pipes have grown to 1 MiB, so
    // the capture thread reads big records; lines in between make small ones on both streams.
    const script = [
      `dd if=${file} bs=1048576 count=1 status=none`,
      `dd if=${file} bs=786432 count=1 status=none >&2`,
      'for i in 1 2 3 4 5 6 7 8; do echo out$i; echo err$i >&2; sleep 0.01; done',
      `dd if=${file} bs=1048576 count=1 status=none`,
      'echo between',
      `dd if=${file} bs=786432 count=1 status=none >&2`,
      'for i in 1 2 3 4 5 6 7 8; do printf "o%s" $i; printf "e%s" $i >&2; done',
      `dd if=${file} bs=300000 count=1 status=none`,
    ].join('\n');
    const job = await client.startJob({ command: 'sh', args: ['-c', script] });
    for await (const _ of client.streamLogs({ jobId: job.id, follow: true })) void _; // until it ends
    assert.equal((await client.getJob(job.id)).state, 'exited');

    const all = await chunksFrom(0, job.id);
    const lines = (prefix: string) => Array.from({ length: 8 }, (_, i) => `${prefix}${i + 1}\n`).join('');
    const counted = (prefix: string) => Array.from({ length: 8 }, (_, i) => `${prefix}${i + 1}`).join('');
    const expected = {
      stdout: Buffer.concat([data, Buffer.from(lines('out')), data, Buffer.from('between\n'), Buffer.from(counted('o')), data.subarray(0, 300000)]),
      stderr: Buffer.concat([data.subarray(0, 786432), Buffer.from(lines('err')), data.subarray(0, 786432), Buffer.from(counted('e'))]),
    };
    assert.ok(bytesOf(all, 'stdout' as const).equals(expected.stdout), 'stdout streamed from 0 is what the job wrote');
    assert.ok(bytesOf(all, 'stderr' as const).equals(expected.stderr), 'stderr streamed from 0 is what the job wrote');
    // Chunks tile the log: each starts where the one before ended.
    for (let i = 1; i < all.length; i++) assert.equal(all[i]!.offset, all[i - 1]!.nextOffset, `chunk ${i} starts where chunk ${i - 1} ended`);
    const biggest = Math.max(...all.map((c) => c.data.length));
    // What this run exercised (the capture thread decides how big a record is).
    process.stdout.write(`# ${all.length} chunks, the biggest ${biggest} bytes (${all.filter((c) => c.data.length > 256 << 10).length} above 256 KiB)\n`);

    for (const [i, chunk] of all.entries()) {
      const rest = all.slice(i + 1);
      const resumed = await chunksFrom(chunk.nextOffset, job.id);
      for (const stream of ['stdout' as const, 'stderr' as const]) {
        const want = bytesOf(rest, stream);
        const got = bytesOf(resumed, stream);
        assert.ok(got.equals(want), `resuming after chunk ${i} (next_offset ${chunk.nextOffset}): ${stream} gave ${got.length} bytes, ${want.length} expected`);
      }
    }
  });
});
