// Job names and labels in the Worker: a name is one owner's for as long as the job is kept, whoever
// races for it, and across a restart (the journal keeps names and labels, a big spec's too); it is
// free again once the job is removed (by remove() or retention) or its start failed. Real jobs,
// real cgroups, a real state directory reopened.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';

import { JobworkerError } from '../../src/errors';
import { defaultScratchRoot, Worker } from '../../src/worker';
import { requireRoot } from '../helpers/root';
import { openTestWorker, testWorkerOptions } from '../helpers/worker';

function alreadyExists(holder: string, name: string): (error: unknown) => boolean {
  return (error) =>
    error instanceof JobworkerError &&
    error.kind === 'already-exists' &&
    error.message.includes(`"${name}" is already the name of job ${holder}`) &&
    /choose another name, or remove that job first \(job-cli /.test(error.message);
}

describe('job names and labels in the Worker', requireRoot, () => {
  it('of concurrent starts with one name, exactly one wins; another owner may use it; a failed start frees it', { timeout: 60_000 }, async () => {
    const t = await openTestWorker('names-race');
    try {
      const { worker } = t;
      const starts = Array.from({ length: 8 }, () => worker.start({ command: 'sleep', args: ['60'], owner: 'alice' }, { name: 'web' }));
      const settled = await Promise.allSettled(starts);
      const won = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      assert.equal(won.length, 1, 'exactly one start gets the name');
      const winner = won[0]!;
      for (const result of settled) if (result.status === 'rejected') assert.ok(alreadyExists(winner.id, 'web')(result.reason), String(result.reason));
      assert.equal(worker.list({ owner: 'alice' }).length, 1, 'the refused starts left nothing');
      assert.equal(worker.named('alice', 'web'), winner);
      await assert.rejects(worker.start({ command: 'true', owner: 'alice' }, { name: 'web' }), /\(running\); .*job-cli stop web, then job-cli rm web/);

      const bobs = await worker.start({ command: 'true', owner: 'bob' }, { name: 'web' });
      assert.equal(worker.named('bob', 'web'), bobs);
      assert.deepEqual(worker.allNamed('web').map((job) => job.owner), ['alice', 'bob']);

      await assert.rejects(worker.start({ command: '/nonexistent/program', owner: 'alice' }, { name: 'broken' }), /not found/);
      assert.equal(worker.named('alice', 'broken'), undefined);
      const again = await worker.start({ command: 'true', owner: 'alice' }, { name: 'broken' });
      assert.equal((await again.wait()).state, 'exited');

      await winner.stop({ graceMs: 0 });
      await bobs.wait();
    } finally {
      await t.cleanup();
    }
  });

  it('a bad name or label is refused before anything starts, naming the field', { timeout: 30_000 }, async () => {
    const t = await openTestWorker('names-bad');
    try {
      await assert.rejects(t.worker.start({ command: 'true' }, { name: 'two words' }), { field: 'name' });
      await assert.rejects(t.worker.start({ command: 'true' }, { labels: { 'bad key': 'x' } }), { field: 'labels' });
      assert.deepEqual(t.worker.list(), []);
    } finally {
      await t.cleanup();
    }
  });

  it('names and labels survive a restart (a big spec\'s too); the name is taken until the job is removed, then free', { timeout: 60_000 }, async () => {
    const options = testWorkerOptions('names-restart');
    let worker: Worker | null = await Worker.open(options);
    const reopen = async (): Promise<Worker> => {
      await worker!.close();
      worker = null;
      return (worker = await Worker.open(options));
    };
    try {
      let w = worker;
      const web = await w.start({ command: 'sh', args: ['-c', 'echo serving'], owner: 'alice' }, { name: 'web', labels: { tier: 'front', 'example.com/team': 'ops' } });
      // Over 8 KiB of argv: the spec goes to its own file; the record keeps the name and labels.
      const bigArgs = Array.from({ length: 40 }, (_, i) => `${i}-${'x'.repeat(400)}`);
      const big = await w.start({ command: 'true', args: bigArgs, owner: 'alice' }, { name: 'big', labels: { tier: 'batch' } });
      const plain = await w.start({ command: 'true', owner: 'alice' });
      await Promise.all([web.wait(), big.wait(), plain.wait()]);

      w = await reopen();
      assert.equal(w.named('alice', 'web')?.id, web.id);
      assert.equal(w.named('alice', 'big')?.id, big.id);
      assert.deepEqual(w.job(web.id).status().labels, { tier: 'front', 'example.com/team': 'ops' });
      assert.ok(w.job(big.id).status().argsOmitted > 0, 'the big spec is in its file');
      assert.deepEqual(w.job(big.id).status().labels, { tier: 'batch' });
      assert.equal(w.job(plain.id).status().name, null);
      assert.deepEqual(w.list({ labels: ['tier'] }).map((job) => job.id), [web.id, big.id]);
      assert.deepEqual(w.list({ labels: ['tier=front', 'example.com/team=ops'] }).map((job) => job.id), [web.id]);
      assert.deepEqual(w.list({ name: 'big' }).map((job) => job.id), [big.id]);
      await assert.rejects(w.start({ command: 'true', owner: 'alice' }, { name: 'web' }), alreadyExists(web.id, 'web'));
      await assert.rejects(w.start({ command: 'true', owner: 'alice' }, { name: 'web' }), /\(exited\); .*\(job-cli rm web\)/);

      await w.remove(web.id);
      assert.equal(w.named('alice', 'web'), undefined);
      const second = await w.start({ command: 'true', owner: 'alice' }, { name: 'web' });
      await second.wait();

      w = await reopen();
      assert.equal(w.named('alice', 'web')?.id, second.id, 'after the restart the name is the new job\'s');
      assert.equal(w.get(web.id), undefined);
    } finally {
      await (worker as Worker | null)?.close();
      rmSync(options.stateDir, { recursive: true, force: true });
      rmSync(defaultScratchRoot(options.stateDir), { recursive: true, force: true });
    }
  });

  it('retention that removes a finished job frees its name', { timeout: 30_000 }, async () => {
    const t = await openTestWorker('names-retention', { retention: { maxFinishedJobs: 1 } });
    try {
      const first = await t.worker.start({ command: 'true' }, { name: 'nightly' });
      await first.wait();
      const second = await t.worker.start({ command: 'true' }, { name: 'other' });
      await second.wait(); // its end pushes the first one out
      assert.equal(t.worker.get(first.id), undefined);
      const next = await t.worker.start({ command: 'true' }, { name: 'nightly' });
      assert.equal(t.worker.named('', 'nightly'), next);
      await next.wait();
    } finally {
      await t.cleanup();
    }
  });
});
