// The v1 driver against a fake kernel: a legacy host (v1 only, cpu and cpuacct co-mounted, freezer
// for kill) and a hybrid one (v1 controllers plus a controller-less cgroup2). Real hybrid cgroups
// are exercised by the integration tests; legacy hosts cannot be booted here.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { openCgroupDriver } from '../../src/cgroup/index';
import { JobworkerError } from '../../src/errors';
import { createJobCgroup, TEST_SLICE } from '../helpers/cgroup-plan';
import { bootFakeV1Host, FAKE_V1_MOUNTS } from '../helpers/fake-cgroup-kernel';

let tmp: string;

beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'jobworker-fake-cgroup1-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function bootHost(mode: 'legacy' | 'hybrid', memoryOwn = '/') {
  return bootFakeV1Host(tmp, mode, memoryOwn);
}

describe('legacy (v1 only) host', () => {
  it('a job gets a directory in every hierarchy, each limit in its controller\'s files', async () => {
    const { kernel, host, at } = await bootHost('legacy', '/machine/app');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    assert.equal(driver.mode, 'legacy');
    assert.equal(driver.jobsRoot, at('freezer', '/jw/jobs'));
    assert.deepEqual([...driver.controllers].sort(), ['cpu', 'io', 'memory', 'pids']);
    const job = await createJobCgroup(driver, 'j1', { cpu: 1.5, cpuWeight: 50, memoryBytes: 32 << 20, memoryHighBytes: 16 << 20, pids: 50 }, '/');
    assert.equal(job.path, at('freezer', '/jw/jobs/identity.test/j1'));
    const cpu = at('cpu,cpuacct', '/jw/jobs/identity.test/j1');
    assert.equal(await kernel.control(cpu, 'cpu.cfs_period_us'), '100000');
    assert.equal(await kernel.control(cpu, 'cpu.cfs_quota_us'), '150000');
    assert.equal(await kernel.control(cpu, 'cpu.shares'), '512');
    // Beneath the daemon's own memory cgroup, which is not the root here.
    const memory = at('memory', '/machine/app/jw/jobs/identity.test/j1');
    assert.equal(await kernel.control(memory, 'memory.limit_in_bytes'), String(32 << 20));
    assert.equal(await kernel.control(memory, 'memory.memsw.limit_in_bytes'), String(32 << 20));
    assert.equal(await kernel.control(memory, 'memory.soft_limit_in_bytes'), String(16 << 20));
    assert.equal(await kernel.control(at('pids', '/jw/jobs/identity.test/j1'), 'pids.max'), '50');
  });

  it('placement: no cgroup2 fd; the child joins every v1 hierarchy once', async () => {
    const { kernel, host, at } = await bootHost('legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'j2', {}, '/');
    const { placement } = job.plan;
    assert.equal(placement.cgroupPath, undefined);
    // cpu,cpuacct are co-mounted: one directory, joined once.
    const joined = placement.joinTasksPaths.map((file) => statSync(file).ino).sort();
    const expected = FAKE_V1_MOUNTS.map(([name]) => statSync(at(name, '/jw/jobs/identity.test/j2/tasks')).ino).sort();
    assert.deepEqual(joined, expected);
  });

  it('without swap accounting: no memsw, swappiness 0 instead', async () => {
    const { kernel, host, at } = await bootHost('legacy');
    kernel.noSwapAccounting = true;
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    await createJobCgroup(driver, 'j3', { memoryBytes: 8 << 20 }, '/');
    const memory = at('memory', '/jw/jobs/identity.test/j3');
    assert.equal(await kernel.control(memory, 'memory.limit_in_bytes'), String(8 << 20));
    assert.equal(await kernel.control(memory, 'memory.swappiness'), '0');
  });

  it('stats: cpuacct usage (ns), cpu throttling (ns), memory usage/peak/oom_kill, blkio bytes and ops', async () => {
    const { kernel, host, at } = await bootHost('legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'j4', {}, '/');
    const cpu = at('cpu,cpuacct', '/jw/jobs/identity.test/j4');
    await kernel.setStat(cpu, 'cpuacct.usage', '3000000\n');
    await kernel.setStat(cpu, 'cpuacct.usage_user', '2000000\n');
    await kernel.setStat(cpu, 'cpuacct.usage_sys', '1000000\n');
    await kernel.setStat(cpu, 'cpu.stat', 'nr_periods 9\nnr_throttled 5\nthrottled_time 7000\n');
    const memory = at('memory', '/jw/jobs/identity.test/j4');
    await kernel.setStat(memory, 'memory.usage_in_bytes', '8192\n');
    await kernel.setStat(memory, 'memory.max_usage_in_bytes', '65536\n');
    await kernel.setStat(memory, 'memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
    const blkio = at('blkio', '/jw/jobs/identity.test/j4');
    await kernel.setStat(blkio, 'blkio.throttle.io_service_bytes', '8:0 Read 512\n8:0 Write 1024\n8:0 Total 1536\nTotal 1536\n');
    await kernel.setStat(blkio, 'blkio.throttle.io_serviced', '8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n');
    await kernel.setStat(at('pids', '/jw/jobs/identity.test/j4'), 'pids.current', '2\n');
    assert.deepEqual(await job.stats(), {
      cpuUsageMicros: 3000,
      cpuUserMicros: 2000,
      cpuSystemMicros: 1000,
      cpuThrottledPeriods: 5,
      cpuThrottledMicros: 7,
      memoryCurrentBytes: 8192,
      memoryPeakBytes: 65536,
      oomKills: 1,
      pidsCurrent: 2,
      io: [{ device: '8:0', readBytes: 512, writeBytes: 1024, readOps: 1, writeOps: 2 }],
    });
  });

  it('orphans: a half-created job (some hierarchies only) is listed, opened and removed', async () => {
    const { kernel, host, at } = await bootHost('legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    // One in a slice, one directly in jobs/ (the layout before slices).
    await kernel.makeCgroupTree(at('memory', `/jw/jobs/${TEST_SLICE}/crashed`));
    await kernel.makeCgroupTree(at('pids', '/jw/jobs/older'));
    assert.deepEqual(await driver.listJobs(), [{ id: 'crashed', slice: TEST_SLICE }, { id: 'older' }]);
    for (const name of await driver.listJobs()) {
      const orphan = await driver.open(name);
      assert.ok(orphan);
      await orphan.destroy();
    }
    assert.deepEqual(await driver.listJobs(), []);
    await driver.removeIdleSlices();
    await driver.releaseRoot();
    for (const [name] of FAKE_V1_MOUNTS) assert.deepEqual(await kernel.children(at(name, '/')), [], name);
  });

  it('a failed write removes every directory already made', async () => {
    const { kernel, host } = await bootHost('legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    kernel.failWrites.set('pids.max', 'EINVAL');
    await assert.rejects(createJobCgroup(driver, 'j5', {}, '/'), /write "4096" to .*pids\/jw\/jobs\/identity\.test\/j5\/pids.max: EINVAL/);
    assert.deepEqual(await driver.listJobs(), []);
  });

  it('no freezer hierarchy on a legacy host: refused, since daemons of a job could not be killed', async () => {
    const { kernel, host } = await bootHost('legacy');
    host.v1 = host.v1.filter((h) => !h.controllers.includes('freezer'));
    await assert.rejects(openCgroupDriver({ host, fs: kernel, rootName: 'jw' }), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'failed-precondition' && /without a freezer hierarchy/.test(error.message));
    // The roots made before the refusal are gone again.
    for (const [name] of FAKE_V1_MOUNTS) assert.deepEqual(await kernel.children(path.join(tmp, name)), [], name);
  });
});

describe('hybrid host', () => {
  it('the job is born in the unified hierarchy and joins cpu, memory, blkio, pids (not cpuacct or freezer)', async () => {
    const { kernel, host, at } = await bootHost('hybrid');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    assert.equal(driver.mode, 'hybrid');
    assert.equal(driver.jobsRoot, at('unified', '/jw/jobs'));
    const job = await createJobCgroup(driver, 'h1', {}, '/');
    assert.equal(job.path, at('unified', '/jw/jobs/identity.test/h1'));
    const { placement } = job.plan;
    assert.ok(statSync(placement.cgroupPath!).isDirectory());
    assert.equal(placement.joinTasksPaths.length, 4); // cpu,cpuacct (co-mounted here), memory, blkio, pids
    assert.deepEqual(await kernel.children(at('freezer', '/')), []);
  });

  it('CPU usage from the unified cpu.stat, throttling from v1 cpu.stat', async () => {
    const { kernel, host, at } = await bootHost('hybrid');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'h2', { cpu: 0.2 }, '/');
    await kernel.setStat(job.path, 'cpu.stat', 'usage_usec 400\nuser_usec 300\nsystem_usec 100\n');
    await kernel.setStat(at('cpu,cpuacct', '/jw/jobs/identity.test/h2'), 'cpu.stat', 'nr_periods 20\nnr_throttled 19\nthrottled_time 1500000000\n');
    const stats = await job.stats();
    assert.deepEqual(
      [stats.cpuUsageMicros, stats.cpuUserMicros, stats.cpuSystemMicros, stats.cpuThrottledPeriods, stats.cpuThrottledMicros],
      [400, 300, 100, 19, 1_500_000],
    );
    await job.destroy();
    await driver.releaseRoot();
  });
});
