// Crash recovery: the process holding a Worker is SIGKILLed with jobs running; reopening marks them
// lost, kills and removes their cgroups, and keeps every byte they wrote.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';

import { Worker, type JobSpec, type JobStatus, type StartOptions, type WorkerOptions } from '../../src/worker';
import { damageJournalLinesOf } from '../helpers/journal';
import { isRunning } from '../helpers/proc';
import { requireRoot } from '../helpers/root';
import { sharedCgroupRoot, testWorkerOptions } from '../helpers/worker';

describe('crash recovery', requireRoot, () => {
  it('jobs of a killed worker become lost, their cgroups go, their logs stay whole', { timeout: 60_000 }, async () => {
    // The worker lives in a child process and is reopened here: both must be able to use the root.
    const shared = sharedCgroupRoot(`jobworker-test-${process.pid}-recovery`);
    const options = testWorkerOptions('recovery', { cgroup: shared.cgroup });
    const holder = spawn(process.execPath, [path.join(__dirname, '..', 'helpers', 'worker-holder.js'), options.stateDir, JSON.stringify(options.cgroup)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(createInterface({ input: holder.stdout! }), 'line')) as [string];
    const before = JSON.parse(line) as { quiet: JobStatus; chatty: JobStatus };
    assert.equal(before.chatty.state, 'running');

    holder.kill('SIGKILL');
    await once(holder, 'exit');
    assert.ok(isRunning(before.quiet.pid!), 'jobs outlive the killed worker');
    // A crash can leave a torn record at the end of a log: simulate one.
    appendFileSync(path.join(options.stateDir, 'logs', `${before.chatty.id}.log`), Buffer.from('JWR1\x01\x00\x00\x00garbage'));
    // …and a torn last journal line.
    appendFileSync(path.join(options.stateDir, 'journal'), '0badc0de {"op":"put","rec');

    const worker = await Worker.open(options);
    try {
      assert.deepEqual(worker.recovery.lost.sort(), [before.quiet.id, before.chatty.id].sort());
      for (const id of [before.quiet.id, before.chatty.id]) {
        const status = worker.job(id).status();
        assert.equal(status.state, 'lost');
        assert.match(status.outcome!.reason, /^lost: /);
      }
      assert.equal(isRunning(before.quiet.pid!), false, 'the lost job was killed');
      assert.equal(isRunning(before.chatty.pid!), false);
      assert.deepEqual(await worker.cgroupDriver.listJobs(), []);

      let stdout = '';
      for await (const record of worker.job(before.chatty.id).logs({ follow: true, streams: ['stdout'] })) stdout += record.data.toString();
      const expected = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('');
      assert.equal(stdout, expected, 'every byte written before the crash is in the log');

      const fresh = await worker.start({ command: 'echo', args: ['new jobs work'] });
      assert.equal((await fresh.wait()).state, 'exited');
    } finally {
      await worker.close();
      shared.cleanup();
      rmSync(options.stateDir, { recursive: true, force: true });
    }
  });
});

async function output(worker: Worker, id: string): Promise<string> {
  let text = '';
  for await (const record of worker.job(id).logs()) if (record.stream !== 'marker') text += record.data.toString();
  return text;
}

describe('a damaged journal: reported, never amplified', requireRoot, () => {
  const bigArg = 'y'.repeat(100_000);

  /** A closed worker's state directory with finished jobs: a, b (failed), c (a big spec), d (no output), e (removed). */
  async function finishedJobs(label: string): Promise<{ options: WorkerOptions; ids: Record<'a' | 'b' | 'c' | 'd' | 'e', string>; warnings: string[] }> {
    const warnings: string[] = [];
    const options = testWorkerOptions(label, { warn: (message) => warnings.push(message) });
    const worker = await Worker.open(options);
    const run = async (spec: JobSpec, startOptions: StartOptions = {}) => {
      const job = await worker.start(spec, startOptions);
      await job.wait();
      return job.id;
    };
    const ids = {
      a: await run({ command: 'sh', args: ['-c', 'echo a-output'], owner: 'alice' }),
      b: await run({ command: 'sh', args: ['-c', 'echo b-output; exit 3'], owner: 'bob' }),
      c: await run({ command: 'sh', args: ['-c', 'echo c-output', 'arg0', bigArg, bigArg], owner: 'carol' }, { name: 'big-one', labels: { tier: 'batch' } }),
      d: await run({ command: 'true', owner: 'dan' }),
      e: await run({ command: 'sh', args: ['-c', 'echo e-output'], owner: 'eve' }),
    };
    await worker.remove(ids.e);
    await worker.close();
    return { options, ids, warnings };
  }

  it('a flipped byte: a finished job stays finished, one whose final record was hit is lost (not "killed"), one with no record left is rebuilt from its log and its spec file; nothing intact is deleted; one warning names them', { timeout: 60_000 }, async () => {
    const { options, ids, warnings } = await finishedJobs('damage');
    try {
      assert.equal(damageJournalLinesOf(options.stateDir, ids.a, true), 2);
      assert.equal(damageJournalLinesOf(options.stateDir, ids.c), 2);
      assert.equal(damageJournalLinesOf(options.stateDir, ids.d), 2);
      // A removed job's log that outlived its removal (a crash) is not brought back.
      writeFileSync(path.join(options.stateDir, 'logs', `${ids.e}.log`), readFileSync(path.join(options.stateDir, 'logs', `${ids.a}.log`)));
      const worker = await Worker.open(options);
      try {
        const damage = worker.recovery.damage!;
        assert.equal(damage.journalLines, 5);
        assert.deepEqual(damage.finalStateUnknown, [ids.a]);
        assert.deepEqual(damage.rebuiltFromLogs.sort(), [ids.c, ids.d].sort());
        assert.deepEqual(worker.recovery.incompleteStartsRemoved, []);
        assert.equal(worker.get(ids.e), undefined);
        assert.equal(existsSync(path.join(options.stateDir, 'logs', `${ids.e}.log`)), false);

        const a = worker.job(ids.a).status();
        assert.equal(a.state, 'lost');
        assert.match(a.outcome!.reason, /^lost: its last record was damaged: how it ended is unknown/);
        assert.doesNotMatch(a.outcome!.reason, /killed/);
        assert.equal(a.owner, 'alice');
        assert.equal(await output(worker, ids.a), 'a-output\n');

        const b = worker.job(ids.b).status();
        assert.deepEqual([b.state, b.outcome!.exitCode], ['failed', 3], 'its last intact record says it finished: it stays so');

        const c = await worker.job(ids.c).detailedStatus();
        assert.equal(c.state, 'lost');
        assert.match(c.outcome!.reason, /its record was damaged or missing; rebuilt from its log \(its exit status is unknown\)/);
        assert.deepEqual([c.command, c.owner], ['sh', 'carol'], 'from its spec file');
        assert.deepEqual(c.args, ['-c', 'echo c-output', 'arg0', bigArg, bigArg]);
        assert.deepEqual([c.name, c.labels], ['big-one', { tier: 'batch' }], 'its name and labels from its spec file');
        assert.equal(worker.named('carol', 'big-one')?.id, ids.c, 'and its name is taken again');
        assert.equal(await output(worker, ids.c), 'c-output\n');
        assert.ok(c.startedAt !== null && c.finishedAt !== null && c.startedAt.getTime() <= c.finishedAt.getTime());

        const d = worker.job(ids.d).status();
        assert.deepEqual([d.state, d.owner, d.command], ['lost', '', ''], 'unknown owner: only admins see it');
        assert.match(d.outcome!.reason, /command, owner and exit status are unknown/);

        // One warning, naming what was lost, and the damaged lines kept.
        const damageWarnings = warnings.filter((w) => w.startsWith('state directory damaged'));
        assert.equal(damageWarnings.length, 1);
        for (const id of [ids.a, ids.c, ids.d]) assert.ok(damageWarnings[0]!.includes(id), id);
        const copy = readFileSync(damage.copiedTo!, 'latin1');
        assert.equal((copy.match(/^offset=\d+ length=\d+$/gm) ?? []).length, 5);
        for (const id of [ids.c, ids.d]) assert.ok(copy.includes(id));
      } finally {
        await worker.close();
      }
      // Rebuilt records are records now: the next start finds nothing damaged.
      const again = await Worker.open(options);
      assert.equal(again.recovery.damage, null);
      assert.equal(again.job(ids.c).status().state, 'lost');
      await again.close();
    } finally {
      rmSync(options.stateDir, { recursive: true, force: true });
    }
  });

  it('an empty journal: every job is rebuilt from its log, even one without output (records were lost: it is not an incomplete start)', { timeout: 60_000 }, async () => {
    const { options, ids } = await finishedJobs('empty-journal');
    try {
      writeFileSync(path.join(options.stateDir, 'journal'), '');
      const worker = await Worker.open(options);
      try {
        assert.deepEqual(worker.recovery.damage!.rebuiltFromLogs.sort(), [ids.a, ids.b, ids.c, ids.d].sort());
        assert.deepEqual(worker.recovery.incompleteStartsRemoved, []);
        assert.equal(await output(worker, ids.d), '');
        for (const [id, text] of [[ids.a, 'a-output\n'], [ids.b, 'b-output\n'], [ids.c, 'c-output\n']] as const) {
          assert.equal(worker.job(id).status().state, 'lost');
          assert.equal(await output(worker, id), text);
        }
        assert.equal(worker.job(ids.c).status().owner, 'carol');
      } finally {
        await worker.close();
      }
    } finally {
      rmSync(options.stateDir, { recursive: true, force: true });
    }
  });

  it('an intact journal: a log with no output and no record is an incomplete start and goes; every recorded job stays', { timeout: 60_000 }, async () => {
    const { options, ids } = await finishedJobs('incomplete-start');
    try {
      // What a start that crashed before it was recorded leaves: a log holding only its header.
      const crashed = randomUUID();
      const crashedLog = path.join(options.stateDir, 'logs', `${crashed}.log`);
      writeFileSync(crashedLog, readFileSync(path.join(options.stateDir, 'logs', `${ids.d}.log`)));
      const worker = await Worker.open(options);
      try {
        assert.equal(worker.recovery.damage, null);
        assert.deepEqual(worker.recovery.incompleteStartsRemoved, [crashed]);
        assert.equal(existsSync(crashedLog), false);
        assert.equal(worker.get(crashed), undefined);
        assert.equal(worker.job(ids.d).status().state, 'exited');
        assert.equal(await output(worker, ids.a), 'a-output\n');
      } finally {
        await worker.close();
      }
    } finally {
      rmSync(options.stateDir, { recursive: true, force: true });
    }
  });

  it('a big spec: listed with its leading arguments, read whole on demand; its spec file goes with the job', { timeout: 60_000 }, async () => {
    const t = await Worker.open(testWorkerOptions('big-spec'));
    const stateDir = t.stateDir;
    try {
      const job = await t.start({ command: 'sh', args: ['-c', 'echo "$#"', 'sh', bigArg, 'after'], env: { PATH: '/usr/bin:/bin', BIG: bigArg } });
      assert.equal((await job.wait()).state, 'exited');
      assert.equal(await output(t, job.id), '2\n');
      const listed = job.status();
      assert.deepEqual([listed.args, listed.argsOmitted], [['-c', 'echo "$#"', 'sh'], 2]);
      const whole = await job.detailedStatus();
      assert.deepEqual([whole.args.length, whole.args[3], whole.argsOmitted], [5, bigArg, 0]);
      const specFile = path.join(stateDir, 'logs', `${job.id}.spec`);
      assert.equal(statSync(specFile).mode & 0o777, 0o600);
      await t.remove(job.id);
      assert.equal(existsSync(specFile), false);
    } finally {
      await t.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
