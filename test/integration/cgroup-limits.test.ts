// Each limit proven by its effect on a real job, never by reading back the file written (root).
// Mode-agnostic: the same assertions hold on hybrid and pure cgroup v2 hosts. Other work runs on
// the same machine meanwhile, so the bounds are the issue's, not tighter.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { deviceId, resolveBlockDevice, type OpenedCgroupDriver, type ResourceController } from '../../src/cgroup/index';
import { closeTestDriver, findCgroupDirs, JobLogs, openTestDriver, outputOf, runInJob, TEST_ROOT_NAME, createJobCgroup } from '../helpers/cgroup-jobs';
import { requireRoot } from '../helpers/root';

const MiB = 1024 * 1024;
let driver: OpenedCgroupDriver;
const logs = new JobLogs();
let seq = 0;

/** Skips (with the reason) when the host truly lacks the controller; true if the test may run. */
function has(t: TestContext, controller: ResourceController): boolean {
  if (driver.controllers.has(controller)) return true;
  t.skip(`the ${controller} controller is not available on this host`);
  return false;
}

describe('limits, by their effect', requireRoot, () => {
  before(async () => {
    driver = await openTestDriver();
  });

  after(async () => {
    await closeTestDriver(driver);
    logs.remove();
    assert.deepEqual(findCgroupDirs(TEST_ROOT_NAME), [], 'every cgroup of this test is removed');
  });

  it('CPU: a busy loop under a 0.2 CPU quota uses 0.15-0.25 CPU-seconds per second, and is throttled', async (t) => {
    if (!has(t, 'cpu')) return;
    const job = await createJobCgroup(driver, `cpu-${seq++}`, { cpu: 0.2 }, '/');
    try {
      const running = runInJob(job, logs, 'sh', ['-c', 'while :; do :; done']);
      await delay(500); // past the first periods, which may run before any quota is spent
      const first = await job.stats();
      const from = performance.now();
      await delay(3000);
      const last = await job.stats();
      const seconds = (performance.now() - from) / 1000;
      const rate = (last.cpuUsageMicros - first.cpuUsageMicros) / 1e6 / seconds;
      const throttled = last.cpuThrottledPeriods - first.cpuThrottledPeriods;
      t.diagnostic(`${rate.toFixed(3)} CPU-s/s over ${seconds.toFixed(2)} s; throttled in ${throttled} periods`);
      assert.ok(rate >= 0.15 && rate <= 0.25, `CPU use ${rate.toFixed(3)} CPU-s/s, expected 0.15-0.25`);
      assert.ok(throttled > 0, 'throttled periods counted');
      assert.ok(last.cpuThrottledMicros > first.cpuThrottledMicros, 'throttled time counted');
      running.proc.kill('SIGKILL');
      await running.proc.exited;
    } finally {
      await job.destroy();
    }
  });

  it('memory: a job allocating past a 64 MiB max is OOM-killed and the counter says so; one under it is not', async (t) => {
    if (!has(t, 'memory')) return;
    // tail keeps everything it reads from a stream without newlines: its memory grows with the input.
    const over = await createJobCgroup(driver, `mem-over-${seq++}`, { memoryBytes: 64 * MiB }, '/');
    try {
      const running = runInJob(over, logs, 'sh', ['-c', 'head -c 256M /dev/zero | tail > /dev/null']);
      const exit = await running.proc.exited;
      const stats = await over.stats(); // the snapshot at exit, before the cgroup goes
      t.diagnostic(`over: exit ${JSON.stringify({ code: exit.code, signal: exit.signal })}, oomKills ${stats.oomKills}, peak ${stats.memoryPeakBytes}`);
      assert.ok(stats.oomKills >= 1, 'reported as OOM by the kernel\'s counter');
      assert.notEqual(exit.code, 0);
      if (stats.memoryPeakBytes !== null) assert.ok(stats.memoryPeakBytes <= 64 * MiB + MiB, `peak ${stats.memoryPeakBytes}`);
    } finally {
      await over.destroy();
    }

    const under = await createJobCgroup(driver, `mem-under-${seq++}`, { memoryBytes: 64 * MiB }, '/');
    try {
      const running = runInJob(under, logs, 'sh', ['-c', 'head -c 16M /dev/zero | tail > /dev/null']);
      const exit = await running.proc.exited;
      const stats = await under.stats();
      t.diagnostic(`under: exit ${exit.code}, oomKills ${stats.oomKills}, peak ${stats.memoryPeakBytes}`);
      assert.equal(exit.code, 0, (await outputOf(running)).stderr);
      assert.equal(stats.oomKills, 0);
      if (stats.memoryPeakBytes !== null) assert.ok(stats.memoryPeakBytes >= 16 * MiB, `peak ${stats.memoryPeakBytes}`);
    } finally {
      await under.destroy();
    }
  });

  it('IO: direct-IO writes under a 5 MB/s limit on the working directory\'s disk are held near 5 MB/s', async (t) => {
    if (!has(t, 'io')) return;
    const dir = await directoryOnDisk();
    if (dir === undefined) return t.skip('no writable directory on a physical disk (tmpdir, /var/tmp, cwd)');
    try {
      const disk = await resolveBlockDevice(undefined, dir);
      // No device given: the disk behind the working directory.
      const job = await createJobCgroup(driver, `io-${seq++}`, { io: [{ writeBps: 5_000_000 }] }, dir);
      try {
        const blocks = 240; // 240 × 64 KiB = 15.7 MB: about 3 s at 5 MB/s
        // O_DIRECT: v1 blkio throttles only IO the job submits itself, not buffered writeback.
        const started = performance.now();
        const running = runInJob(job, logs, 'dd', ['if=/dev/zero', 'of=io-test.bin', 'bs=64k', `count=${blocks}`, 'oflag=direct'], dir);
        const exit = await running.proc.exited;
        const seconds = (performance.now() - started) / 1000;
        assert.equal(exit.code, 0, (await outputOf(running)).stderr);
        const written = (await job.stats()).io.find((entry) => entry.device === deviceId(disk))?.writeBytes ?? 0;
        const rate = written / seconds;
        t.diagnostic(`${(written / 1e6).toFixed(1)} MB to ${disk.name} in ${seconds.toFixed(2)} s: ${(rate / 1e6).toFixed(2)} MB/s`);
        assert.ok(written >= blocks * 65536, `the job's io stats count its writes (${written} bytes)`);
        assert.ok(rate >= 3.5e6 && rate <= 6.5e6, `held near 5 MB/s, got ${(rate / 1e6).toFixed(2)} MB/s`);
      } finally {
        await job.destroy();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pids: a job forking past pids.max gets EAGAIN, and the host is fine', async (t) => {
    if (!has(t, 'pids')) return;
    const limit = 40; // room for node's own threads, then sleeps until the kernel says no
    const job = await createJobCgroup(driver, `pids-${seq++}`, { pids: limit }, '/');
    try {
      const script = `
        const { spawn } = require('node:child_process');
        let started = 0;
        const next = () => {
          const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
          child.on('error', (error) => { console.log(error.code + ' after ' + started); process.exit(0); });
          child.on('spawn', () => { if (++started > 500) { console.log('no limit'); process.exit(1); } next(); });
        };
        next();`;
      const running = runInJob(job, logs, process.execPath, ['-e', script]);
      const exit = await running.proc.exited;
      const { stdout, stderr } = await outputOf(running);
      t.diagnostic(stdout.trim());
      assert.equal(exit.code, 0, stderr);
      const match = /^EAGAIN after (\d+)$/m.exec(stdout);
      assert.ok(match !== null, `fork failed with EAGAIN: ${stdout}`);
      assert.ok(Number(match[1]) < limit);
      assert.ok((await job.stats()).pidsCurrent <= limit);
      // The host still forks.
      assert.equal(spawnSync('true').status, 0);
    } finally {
      await job.destroy(); // kills the sleeps left behind
    }
  });
});

/** A fresh directory on a physical disk: the IO limit needs one (tmpfs has no disk to throttle). */
async function directoryOnDisk(): Promise<string | undefined> {
  for (const candidate of [tmpdir(), '/var/tmp', process.cwd()]) {
    try {
      await resolveBlockDevice(undefined, candidate);
      return mkdtempSync(path.join(candidate, 'jobworker-io-'));
    } catch {
      // not on a disk, or not writable: next
    }
  }
  return undefined;
}
