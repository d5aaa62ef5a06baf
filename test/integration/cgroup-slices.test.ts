// Identity slices proven by their effect on real jobs (root): the limits of an identity's slice bind
// all its jobs together — memory, pids, CPU, disk IO — while another identity's jobs, in their own
// slice, are untouched. Mode-agnostic: hybrid hosts (the limits in each v1 hierarchy) and pure
// cgroup v2 (in the slice's one directory). Other work runs on the machine meanwhile: the bounds
// are loose where time is measured.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, afterEach, describe, it, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { resolveBlockDevice, type Limits, type OpenedCgroupDriver, type ResourceController } from '../../src/cgroup/index';
import {
  closeTestDriver,
  createJobCgroup,
  findCgroupDirs,
  JobLogs,
  openTestDriver,
  outputOf,
  runInJob,
  TEST_ROOT_NAME,
  waitForStdout,
  type CreatedCgroup,
  type RunningJob,
} from '../helpers/cgroup-jobs';
import { JobworkerError } from '../../src/errors';
import { requireRoot } from '../helpers/root';

const MiB = 1024 * 1024;
const logs = new JobLogs();
let driver: OpenedCgroupDriver | undefined;
let seq = 0;
const made: CreatedCgroup[] = [];

async function open(sliceLimits: Limits): Promise<OpenedCgroupDriver> {
  driver = await openTestDriver({ sliceLimits: (identity) => (identity === 'alice' ? sliceLimits : {}) });
  return driver;
}

async function job(d: OpenedCgroupDriver, identity: string, limits: Limits = {}, cwd = '/'): Promise<CreatedCgroup> {
  const created = await createJobCgroup(d, `slice-${seq++}`, limits, cwd, identity);
  made.push(created);
  return created;
}

function skipWithout(t: TestContext, d: OpenedCgroupDriver, controller: ResourceController): boolean {
  if (d.controllers.has(controller)) return false;
  t.skip(`the ${controller} controller is not available on this host`);
  return true;
}

/** A python3 job (one process, no threads: it counts exactly in pids). */
function python(created: CreatedCgroup, code: string, cwd?: string): RunningJob {
  return runInJob(created, logs, 'python3', ['-c', code], cwd);
}

describe('identity slices, by their effect', requireRoot, () => {
  afterEach(async () => {
    for (const created of made.splice(0)) await created.destroy();
    await closeTestDriver(driver);
    driver = undefined;
  });

  after(() => {
    logs.remove();
    assert.deepEqual(findCgroupDirs(TEST_ROOT_NAME), [], 'every cgroup of this test is removed');
  });

  it('memory: two jobs of one identity together pass its slice\'s 96 MiB and one is OOM-killed; another identity\'s job holding as much is not', async (t) => {
    const d = await open({ memoryBytes: 96 * MiB });
    if (skipWithout(t, d, 'memory')) return;
    const hold = 'import time; b = b"\\x01" * (60 << 20); print("held", flush=True); time.sleep(1000)';
    const [first, second, other] = [await job(d, 'alice'), await job(d, 'alice'), await job(d, 'bob')];
    const bob = python(other, hold);
    await waitForStdout(bob, 'held');
    const a = python(first, hold);
    await waitForStdout(a, 'held').catch(() => undefined); // it may be the one killed
    const b = python(second, hold);
    // One of alice's two dies by the OOM killer; which one is the kernel's choice.
    const victim = await Promise.race([a.proc.exited.then(() => first), b.proc.exited.then(() => second)]);
    const oomKills = (await first.stats()).oomKills + (await second.stats()).oomKills;
    const slice = await d.sliceStats('alice');
    t.diagnostic(`alice: oomKills ${oomKills}, slice peak ${slice?.memoryPeakBytes}; bob: ${(await other.stats()).memoryCurrentBytes} bytes, oomKills ${(await other.stats()).oomKills}`);
    assert.ok(oomKills >= 1, 'the kernel counted an OOM kill in one of alice\'s jobs');
    assert.ok((await victim.stats()).oomKills >= 1, 'in the job that died');
    if (slice?.memoryPeakBytes !== null && slice?.memoryPeakBytes !== undefined) assert.ok(slice.memoryPeakBytes <= 97 * MiB, `slice peak ${slice.memoryPeakBytes}`);
    assert.equal((await other.stats()).oomKills, 0);
    assert.equal(await other.waitEmpty(0), false, 'bob\'s job still runs');
    assert.ok((await other.stats()).memoryCurrentBytes >= 60 * MiB);
    for (const running of [a, b, bob]) running.proc.kill('SIGKILL');
    await Promise.all([a, b, bob].map((running) => running.proc.exited));
  });

  it('pids: forks of one identity\'s jobs together stop at its slice\'s pids.max (EAGAIN); another identity forks on', async (t) => {
    const d = await open({ pids: 30 });
    if (skipWithout(t, d, 'pids')) return;
    const forkUntil = (most: number): string => `
import os, sys, time
n = 0
while n < ${most}:
    try:
        pid = os.fork()
    except BlockingIOError:
        print("EAGAIN after", n, flush=True)
        break
    if pid == 0:
        time.sleep(1000)
        os._exit(0)
    n += 1
else:
    print("forked", n, flush=True)
time.sleep(1000)`;
    const [first, second, other] = [await job(d, 'alice'), await job(d, 'alice'), await job(d, 'bob')];
    const a = python(first, forkUntil(20));
    await waitForStdout(a, 'forked 20');
    const b = python(second, forkUntil(100));
    await waitForStdout(b, 'EAGAIN');
    const bob = python(other, forkUntil(40));
    await waitForStdout(bob, 'forked 40');
    const forked = Number(/EAGAIN after (\d+)/.exec((await outputOf(b)).stdout)![1]);
    const slice = await d.sliceStats('alice');
    t.diagnostic(`alice: 21 + ${forked + 1} processes (slice pids ${slice?.pidsCurrent} of 30); bob forked 40`);
    assert.ok(21 + forked + 1 <= 30, `alice's jobs together stay within 30: ${21 + forked + 1}`);
    assert.ok(forked >= 5, `the second job got what was left (${forked})`);
    assert.ok((slice?.pidsCurrent ?? 0) <= 30);
    for (const created of [first, second, other]) await created.kill();
  });

  // 0.2 CPU, as the per-job test: low enough that the other work on this 2-CPU machine leaves it.
  it('CPU: two busy jobs of one identity share its slice\'s 0.2 CPU quota', async (t) => {
    const d = await open({ cpu: 0.2 });
    if (skipWithout(t, d, 'cpu')) return;
    const jobs = [await job(d, 'alice'), await job(d, 'alice')];
    const running = jobs.map((created) => runInJob(created, logs, 'sh', ['-c', 'while :; do :; done']));
    await delay(500);
    const first = (await d.sliceStats('alice'))!;
    const from = performance.now();
    await delay(3000);
    const last = (await d.sliceStats('alice'))!;
    const seconds = (performance.now() - from) / 1000;
    const rate = (last.cpuUsageMicros - first.cpuUsageMicros) / 1e6 / seconds;
    t.diagnostic(`alice's two busy loops: ${rate.toFixed(3)} CPU-s/s together, throttled in ${last.cpuThrottledPeriods - first.cpuThrottledPeriods} periods`);
    assert.ok(rate >= 0.15 && rate <= 0.25, `slice CPU use ${rate.toFixed(3)} CPU-s/s, expected 0.15-0.25`);
    assert.ok(last.cpuThrottledPeriods > first.cpuThrottledPeriods, 'the slice is throttled');
    for (const r of running) r.proc.kill('SIGKILL');
    await Promise.all(running.map((r) => r.proc.exited));
  });

  it('IO: direct reads of two jobs of one identity share its slice\'s 4 MB/s (cgroup v2); refused on v1, which cannot', async (t) => {
    const dir = await directoryOnDisk();
    if (dir === undefined) return t.skip('no writable directory on a physical disk (tmpdir, /var/tmp, cwd)');
    try {
      const disk = await resolveBlockDevice(undefined, dir);
      const d = await open({ io: [{ device: dir, readBps: 4_000_000 }] });
      if (skipWithout(t, d, 'io')) return;
      if (d.mode !== 'unified') {
        // v1 blkio throttles each cgroup's own IO only (flat): a slice's limit would bind nothing.
        await assert.rejects(job(d, 'alice', {}, dir), (error: unknown) =>
          error instanceof JobworkerError && error.kind === 'failed-precondition' && /sliceLimits.io: an identity's IO limit needs cgroup v2/.test(error.message));
        return;
      }
      const file = path.join(dir, 'data.bin');
      writeFileSync(file, Buffer.alloc(6 * MiB, 1));
      const fd = openSync(file, 'r');
      fsyncSync(fd);
      closeSync(fd);
      const jobs = [await job(d, 'alice', {}, dir), await job(d, 'alice', {}, dir)];
      const started = performance.now();
      const running = jobs.map((created) => runInJob(created, logs, 'dd', ['if=data.bin', 'of=/dev/null', 'bs=64k', 'iflag=direct'], dir));
      const exits = await Promise.all(running.map((r) => r.proc.exited));
      const seconds = (performance.now() - started) / 1000;
      for (const [i, exit] of exits.entries()) assert.equal(exit.code, 0, (await outputOf(running[i]!)).stderr);
      const rate = (12 * MiB) / seconds;
      t.diagnostic(`2 × 6 MiB read directly from ${disk.name} in ${seconds.toFixed(2)} s: ${(rate / 1e6).toFixed(2)} MB/s together`);
      assert.ok(rate <= 5.5e6, `held near 4 MB/s together, got ${(rate / 1e6).toFixed(2)} MB/s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A fresh directory on a physical disk: an IO limit needs one (tmpfs has no disk to throttle). */
async function directoryOnDisk(): Promise<string | undefined> {
  for (const candidate of [tmpdir(), '/var/tmp', process.cwd()]) {
    try {
      await resolveBlockDevice(undefined, candidate);
      return mkdtempSync(path.join(candidate, 'jobworker-slice-io-'));
    } catch {
      // not on a disk, or not writable: next
    }
  }
  return undefined;
}
