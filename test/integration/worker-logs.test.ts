// Logs and followers through the Worker: catch-up, live growth, many followers, back-pressure, caps.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { ValidationError } from '../../src/errors';
import type { Job } from '../../src/worker';
import { requireRoot } from '../helpers/root';
import { scaled } from '../helpers/scale';
import { openTestWorker, type TestWorker } from '../helpers/worker';

let t: TestWorker;

before(async () => {
  if (requireRoot.skip === undefined) t = await openTestWorker('logs', { defaults: { logMaxBytes: 2 << 30 } });
});
after(async () => {
  await t?.cleanup();
});

async function digest(job: Job, options: Parameters<Job['logs']>[0] = {}): Promise<{ hash: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const record of job.logs(options)) {
    if (record.stream !== 'stdout') continue;
    hash.update(record.data);
    bytes += record.data.length;
  }
  return { hash: hash.digest('hex'), bytes };
}

describe('reading logs', requireRoot, () => {
  it('reads from the start, filters streams, resumes from any record offset', async () => {
    // Paced: stdout and stderr are two pipes, so only output written apart is ordered between them.
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; sleep 0.1; echo d >&2'] });
    await job.wait();
    const all = [];
    for await (const record of job.logs()) all.push(record);
    assert.deepEqual(all.map((r) => `${r.stream}:${r.data}`).join(''), 'stdout:a\nstderr:b\nstdout:c\nstderr:d\n');
    const onlyErr = [];
    for await (const record of job.logs({ streams: ['stderr'] })) onlyErr.push(record.data.toString());
    assert.deepEqual(onlyErr.join(''), 'b\nd\n');
    const resumed = [];
    for await (const record of job.logs({ from: all[2]!.offset })) resumed.push(record.data.toString());
    assert.deepEqual(resumed.join(''), 'c\nd\n');
    assert.ok(all.every((r) => r.timeNs > 0n));
  });

  it('refuses an offset that is not a record boundary, or beyond the end', async () => {
    const job = await t.worker.start({ command: 'echo', args: ['hello'] });
    await job.wait();
    await assert.rejects(async () => {
      for await (const _ of job.logs({ from: 17 })) void _;
    }, (e: unknown) => e instanceof ValidationError && e.field === 'from' && /not the start of a record/.test(e.message));
    await assert.rejects(async () => {
      for await (const _ of job.logs({ from: 1 << 30 })) void _;
    }, /beyond the end of the log/);
  });

  it('a job removed under an open follower: the follower reads on to the removed job\'s last byte, never the next job\'s output; a new reader is refused', async () => {
    // ~690 KB: more than a reader buffers, less than the size up to which a removed log is recycled
    // for a new job (the file the follower holds would be the next job's, overwritten in place).
    const lines = (tag: string) => ['sh', '-c', `seq -f '${tag}-%06g' 1 60000`];
    const removed = await t.worker.start({ command: lines('A')[0]!, args: lines('A').slice(1) });
    await removed.wait();
    const follower = removed.logs({ follow: true })[Symbol.asyncIterator]();
    const first = await follower.next();
    assert.equal(first.done, false);
    await t.worker.remove(removed.id);
    await assert.rejects(async () => {
      for await (const _ of removed.logs()) void _;
    }, /not found \(removed\)/);
    const next = await t.worker.start({ command: lines('B')[0]!, args: lines('B').slice(1) });
    await next.wait();
    let text = first.value!.data.toString();
    for (let r = await follower.next(); !r.done; r = await follower.next()) text += r.value.data.toString();
    const expected = Array.from({ length: 60000 }, (_, i) => `A-${String(i + 1).padStart(6, '0')}\n`).join('');
    assert.equal(text.length, expected.length);
    assert.ok(text === expected, 'the follower read the removed job\'s output, all of it, and nothing else');
    await t.worker.remove(next.id);
  });

  it('follow ends exactly when the job has finished and the last byte is delivered', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'for i in $(seq 1 50); do echo line $i; sleep 0.01; done'] });
    let out = '';
    for await (const record of job.logs({ follow: true })) out += record.data.toString();
    const expected = Array.from({ length: 50 }, (_, i) => `line ${i + 1}\n`).join('');
    assert.equal(out, expected);
    assert.notEqual(job.state, 'running');
  });
});

describe('followers', requireRoot, () => {
  const followerCount = scaled(100, 20);
  const size = scaled(200 * 1000 * 1000, 20 * 1000 * 1000);
  it(`${followerCount} followers started at random moments of a ${size / 1e6} MB job all receive byte-identical output`, { timeout: 300_000 }, async () => {
    const job = await t.worker.start({ command: 'head', args: ['-c', String(size), '/dev/urandom'] });
    const followers: Promise<{ hash: string; bytes: number }>[] = [];
    for (let i = 0; i < followerCount; i++) {
      await delay(Math.random() * 15);
      followers.push(digest(job, { follow: true }));
    }
    const results = await Promise.all(followers);
    const truth = await digest(job); // the whole file, read once after the end
    assert.equal(truth.bytes, size);
    for (const result of results) assert.deepEqual(result, truth);
  });

  it('a follower that stops reading does not grow memory (back-pressure, not buffers)', { timeout: 120_000 }, async () => {
    const size = scaled(600 << 20, 100 << 20);
    const job = await t.worker.start({ command: 'head', args: ['-c', String(size), '/dev/zero'] });
    const iterator = job.logs({ follow: true })[Symbol.asyncIterator]();
    await iterator.next(); // attached and reading
    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;
    await job.wait(); // the job writes 600 MiB while the follower is stalled
    const rssDuring = process.memoryUsage().rss;
    let bytes = 0;
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) bytes += r.value.data.length;
    assert.ok(bytes > 0);
    const growth = rssDuring - rssBefore;
    assert.ok(growth < 64 << 20, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB while ${size >> 20} MiB were written`);
  });

  it('the size cap: capture stops with a marker, followers end cleanly', async () => {
    const small = await openTestWorker('logcap', { defaults: { logMaxBytes: 1 << 20 } });
    try {
      const job = await small.worker.start({ command: 'head', args: ['-c', String(10 << 20), '/dev/zero'] });
      const follower = (async () => {
        let bytes = 0;
        const markers: string[] = [];
        for await (const record of job.logs({ follow: true })) {
          if (record.stream === 'marker') markers.push(JSON.parse(record.data.toString()).event);
          else bytes += record.data.length;
        }
        return { bytes, markers };
      })();
      const status = await job.wait();
      const seen = await follower;
      assert.equal(status.state, 'exited', 'the job was never blocked by the cap');
      assert.equal(status.log.truncated, true);
      assert.equal(seen.bytes, 1 << 20, 'the cap counts output bytes: exactly that many are kept');
      assert.equal(seen.bytes + status.log.droppedBytes, 10 << 20);
      assert.deepEqual(seen.markers, ['truncated']);
    } finally {
      await small.cleanup();
    }
  });
});
