// Tenancy through the Worker (root, real cgroups): each identity's quotas — running jobs, log bytes on
// disk, its slice's pids — refuse its starts with an error naming the quota, while another identity
// starts as before; a default memory limit for every job; one owner per cgroup root; a failed open
// leaves no cgroup.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, it } from 'node:test';

import { JobworkerError, QuotaExceededError } from '../../src/errors';
import { defaultRootName, Worker, type Job } from '../../src/worker';
import { findCgroupDirs } from '../helpers/cgroup-jobs';
import { requireRoot } from '../helpers/root';
import { openTestWorker, testCgroupOptions, testWorkerOptions, type TestWorker } from '../helpers/worker';

// Each test's workers are closed when it ends, newest first: on cgroup v2 the first one opened
// moved this process into its leaf, and can put it back only once the roots beside it are gone.
const opened: TestWorker[] = [];
afterEach(async () => {
  const failures: unknown[] = [];
  for (const t of opened.splice(0).reverse()) await t.cleanup().catch((error: unknown) => failures.push(error));
  if (failures.length > 0) throw failures[0];
});

async function open(label: string, extra: Parameters<typeof openTestWorker>[1] = {}): Promise<TestWorker> {
  const t = await openTestWorker(label, extra);
  opened.push(t);
  return t;
}

function sleeper(worker: Worker, owner: string): Promise<Job> {
  return worker.start({ command: 'sleep', args: ['1000'], owner });
}

describe('identity quotas', requireRoot, () => {
  it('running jobs: the identity at its quota is refused, naming it; another identity starts; a finished job frees a place', async () => {
    const { worker } = await open('quota-running', { identityLimits: { maxRunningJobs: 2 } });
    const alice = [await sleeper(worker, 'alice'), await sleeper(worker, 'alice')];
    await assert.rejects(sleeper(worker, 'alice'), (error: unknown) =>
      error instanceof QuotaExceededError && error.kind === 'resource-exhausted' && error.quota === 'maxRunningJobs' && error.limit === 2 &&
      error.message === 'identity "alice" is at its maxRunningJobs quota: 2 of 2 (identityLimits.maxRunningJobs); stop one of its jobs (job-cli stop ID) or wait for one to end');
    const bob = await sleeper(worker, 'bob');
    assert.deepEqual(worker.quotaUsage('alice'), { runningJobs: 2, maxRunningJobs: 2, logBytes: 0, maxLogBytes: worker.quotaUsage('alice').maxLogBytes });
    await alice[0]!.stop({ graceMs: 0 });
    const third = await sleeper(worker, 'alice');
    for (const job of [alice[1]!, bob, third]) await job.stop({ graceMs: 0 });
    assert.equal(worker.quotaUsage('alice').runningJobs, 0);
  });

  it('log bytes: the identity\'s logs stop at its quota (marker), its next start is refused, a removal frees room; another identity is untouched', async () => {
    const quota = 256 * 1024;
    const { worker } = await open('quota-logs', { identityLimits: { logBytes: quota } });
    const big = await worker.start({ command: 'head', args: ['-c', String(1 << 20), '/dev/zero'], owner: 'alice' });
    const status = await big.wait();
    assert.equal(status.state, 'exited', 'the job ran to its end: capture drained its output');
    assert.equal(status.log.truncated, true);
    const usage = worker.quotaUsage('alice');
    assert.ok(usage.logBytes <= quota + 128 && usage.logBytes >= quota - 64, `${usage.logBytes} bytes of logs for a quota of ${quota}`);
    assert.equal(usage.logBytes, status.log.bytes - 16, 'the whole file after its header counts');
    const markers: string[] = [];
    for await (const record of big.logs()) if (record.stream === 'marker') markers.push(record.data.toString());
    assert.deepEqual(markers.map((m) => JSON.parse(m)), [{ event: 'truncated', reason: 'identity-quota', limitBytes: quota }]);
    await assert.rejects(worker.start({ command: 'true', owner: 'alice' }), (error: unknown) =>
      error instanceof QuotaExceededError && error.quota === 'logBytes' && /remove finished jobs to free their logs \(job-cli remove ID\)/.test(error.message));
    const bob = await (await worker.start({ command: 'echo', args: ['fine'], owner: 'bob' })).wait();
    assert.equal(bob.state, 'exited');
    await worker.remove(big.id);
    assert.equal(worker.quotaUsage('alice').logBytes, 0);
    assert.equal((await (await worker.start({ command: 'echo', args: ['again'], owner: 'alice' })).wait()).state, 'exited');
  });

  it('log bytes: three removals of one job at once free its log once, so the quota still holds after', async () => {
    const quota = 150_000;
    const { worker } = await open('quota-logs-removals', { identityLimits: { logBytes: quota } });
    const keepsAccount = await sleeper(worker, 'alice'); // the identity's account stays while it runs
    const first = await worker.start({ command: 'head', args: ['-c', '100000', '/dev/zero'], owner: 'alice' });
    await first.wait();
    const removals = await Promise.allSettled([worker.remove(first.id), worker.remove(first.id), worker.remove(first.id)]);
    assert.ok(removals.some((r) => r.status === 'fulfilled'), 'one removal at least succeeded');
    for (const r of removals) {
      if (r.status === 'rejected') assert.ok(r.reason instanceof JobworkerError && r.reason.kind === 'not-found', String(r.reason));
    }
    // Freed twice, the 100,000 bytes would make room for 250,000: this job would not be cut at the quota.
    const second = await (await worker.start({ command: 'head', args: ['-c', '300000', '/dev/zero'], owner: 'alice' })).wait();
    assert.equal(second.log.truncated, true, 'the identity\'s quota cut the log');
    const used = worker.quotaUsage('alice').logBytes;
    assert.ok(used <= quota + 128 && used >= quota - 64, `${used} bytes of logs for a quota of ${quota}`);
    await keepsAccount.stop({ graceMs: 0 });
  });

  it('log bytes already on disk count after a restart', async () => {
    const options = testWorkerOptions('quota-logs-restart', { identityLimits: { logBytes: 1 << 20 } });
    try {
      const first = await Worker.open(options);
      await (await first.start({ command: 'head', args: ['-c', '100000', '/dev/zero'], owner: 'carol' })).wait();
      const before = first.quotaUsage('carol').logBytes;
      assert.ok(before >= 100000);
      await first.close();
      const reopened = await Worker.open(options);
      try {
        assert.equal(reopened.quotaUsage('carol').logBytes, before);
      } finally {
        await reopened.close();
      }
    } finally {
      rmSync(options.stateDir, { recursive: true, force: true });
    }
  });

  it('pids: at its slice\'s pids.max, an identity\'s new job is refused naming the quota (its init forks the command inside the slice), or cannot fork (v1, no PID namespace)', async () => {
    const { worker } = await open('quota-pids', { identityLimits: { pids: 8 } });
    const holder = await worker.start({ command: 'sh', args: ['-c', 'for i in 1 2 3 4 5 6; do sleep 1000 & done; echo ok; wait'], owner: 'dave' });
    for await (const record of holder.logs({ follow: true })) if (record.data.toString().includes('ok')) break;
    const started: Job[] = [];
    const refusals: unknown[] = [];
    // The holder fills the slice: its init, sh and six sleeps. Each new job's init forks its command
    // inside the slice, a fork the pids controller counts: refused, naming the quota. (v2: init's
    // own clone3 into the slice is refused already. v1: init joins by migration, which pids.max does
    // not check, and its fork of the command is refused.)
    const sleeperJob = { command: 'sleep', args: ['1000'], owner: 'dave' };
    for (let i = 0; i < 3; i++) await worker.start(sleeperJob).then((job) => started.push(job), (error: unknown) => refusals.push(error));
    assert.ok(started.length <= 1 && refusals.length >= 2, `the slice was full: ${started.length} more started`);
    assert.ok(refusals.every((error) => error instanceof QuotaExceededError && error.quota === 'pids' && error.limit === 8), String(refusals[0]));
    if (worker.cgroupDriver.mode !== 'unified') {
      // v1 without a PID namespace: the job's only process joins by migration (one process per job
      // beyond pids.max, bounded by maxRunningJobs); its forks are refused, and it says so.
      const forker = await worker.start({ command: 'sh', args: ['-c', 'sleep 1000 & wait $!; echo "fork: $?"'], owner: 'dave', isolation: { namespaces: { pid: false } } });
      const status = await forker.wait();
      let out = '';
      for await (const record of forker.logs()) out += record.data.toString();
      assert.notEqual(status.outcome?.exitCode, null);
      assert.match(out, /fork|Cannot|Resource temporarily unavailable/i, `the job could not fork: ${out}`);
    }
    assert.equal((await (await worker.start({ command: 'true', owner: 'erin' })).wait()).state, 'exited');
    for (const job of [holder, ...started]) await job.stop({ graceMs: 0 });
  });

  it('every job gets a memory limit: a quarter of the host\'s memory, no more than its identity\'s', async () => {
    const { worker } = await open('quota-memory-default', { identityOverrides: { small: { memoryBytes: 64 << 20 } } });
    const host = await worker.identityUsage('anyone');
    const job = await worker.start({ command: 'true', owner: 'anyone' });
    assert.equal(job.status().limits.memoryBytes, Math.floor(host.limits.memoryBytes! / 2 / (1 << 20)) * (1 << 20));
    const small = await worker.start({ command: 'true', owner: 'small' });
    assert.equal(small.status().limits.memoryBytes, 64 << 20);
    await assert.rejects(worker.start({ command: 'true', owner: 'small', limits: { memoryBytes: 128 << 20 } }), /limits.memoryBytes: must be at most 67108864, its identity's memory quota/);
    await Promise.all([job.wait(), small.wait()]);
    const usage = await worker.identityUsage('small');
    assert.equal(usage.slice, 'identity.small');
    assert.equal(usage.limits.memoryBytes, 64 << 20);
  });
});

describe('one owner per cgroup root', requireRoot, () => {
  it('a second instance on a root in use is refused, naming the holder; the first one\'s jobs run on', async () => {
    const first = await open('owner-a');
    const job = await sleeper(first.worker, 'alice');
    const stateDir = mkdtempSync(path.join(tmpdir(), 'jobworker-owner-b-'));
    try {
      await assert.rejects(Worker.open({ stateDir, cgroup: first.options.cgroup }), (error: unknown) =>
        error instanceof JobworkerError && error.kind === 'failed-precondition' &&
        new RegExp(`cgroup root .* is in use by process ${process.pid} .*another jobworker`).test(error.message));
      assert.equal(job.state, 'running');
      assert.equal(existsSync(job.status().cwd), true);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
    await job.stop({ graceMs: 0 });
  });

  it('the default root name comes from the state directory: two instances side by side, neither touches the other\'s jobs', async () => {
    assert.notEqual(defaultRootName('/var/lib/jobworker'), defaultRootName('/root/.local/state/jobworker/dev'));
    assert.equal(defaultRootName('/var/lib/jobworker'), defaultRootName('/var/lib/jobworker/'));
    const dirs = [mkdtempSync(path.join(tmpdir(), 'jobworker-side-a-')), mkdtempSync(path.join(tmpdir(), 'jobworker-side-b-'))];
    const workers: Worker[] = [];
    try {
      for (const stateDir of dirs) workers.push(await Worker.open({ stateDir }));
      const [a, b] = workers as [Worker, Worker];
      assert.notEqual(a.cgroupDriver.jobsRoot, b.cgroupDriver.jobsRoot);
      const running = await sleeper(a, 'alice');
      await b.close(); // a clean close of the other instance: its root goes, a's job stays
      workers.pop();
      assert.equal(running.state, 'running');
      assert.equal((await running.stop({ graceMs: 0 })).status.state, 'stopped');
    } finally {
      for (const worker of workers) await worker.close();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
    for (const dir of dirs) assert.deepEqual(findCgroupDirs(defaultRootName(dir)), []);
  });

  it('an open that fails after the cgroup root was made leaves no cgroup', async () => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'jobworker-failed-open-'));
    const cgroup = testCgroupOptions(`jobworker-test-${process.pid}-failed-open`);
    try {
      // A device that is no disk is found only once the driver is open (it resolves devices).
      await assert.rejects(Worker.open({ stateDir, cgroup, identityOverrides: { x: { io: [{ device: '/proc/self', readBps: 1 << 20 }] } } }), /identityOverrides\["x"\]\.io/);
      assert.deepEqual(findCgroupDirs(`jobworker-test-${process.pid}-failed-open`), []);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
