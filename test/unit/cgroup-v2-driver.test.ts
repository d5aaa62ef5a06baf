// The cgroup v2 driver against a fake kernel (a temporary directory tree): the delegation set-up
// (daemon leaf, subtree_control), the file each limit lands in, stats, failures that leave nothing.
// The real kernel runs the same driver in the integration tests on pure v2 hosts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { CgroupHost } from '../../src/cgroup/host';
import { openCgroupDriver, useKillSignaller, type OpenedCgroupDriver } from '../../src/cgroup/index';
import { JobworkerError, SystemError, ValidationError } from '../../src/errors';
import { createJobCgroup, TEST_SLICE } from '../helpers/cgroup-plan';
import { FakeCgroupKernel } from '../helpers/fake-cgroup-kernel';

const ALL_V2 = ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'];
const DAEMON = 4242;
const SERVICE = '/system.slice/jobworker.service';

let tmp: string;
let mount: string;
let sys: string;
let kernel: FakeCgroupKernel;

function host(ownPath: string): CgroupHost {
  return { mode: 'unified', unified: { mountPoint: mount, mountRoot: '/', ownPath }, v1: [] };
}

function cg(cgroupPath: string): string {
  return path.join(mount, cgroupPath);
}

/** Boots a fake kernel: systemd in the root, a service with delegated `delegated` controllers holding `procs`. */
async function boot(options: { inKernel?: string[]; delegated?: string[]; procs?: number[] } = {}): Promise<void> {
  kernel = new FakeCgroupKernel([{ mountPoint: mount, version: 2, controllers: options.inKernel ?? ALL_V2 }]);
  await kernel.boot([1]);
  const delegated = options.delegated ?? ['cpu', 'io', 'memory', 'pids'];
  await kernel.write(cg('cgroup.subtree_control'), delegated.map((c) => `+${c}`).join(' '));
  await kernel.makeCgroupTree(cg('/system.slice'));
  await kernel.write(cg('/system.slice/cgroup.subtree_control'), delegated.map((c) => `+${c}`).join(' '));
  await kernel.makeCgroupTree(cg(SERVICE), options.procs ?? [DAEMON]);
}

function open(ownPath = SERVICE, extra: { root?: string } = {}): Promise<OpenedCgroupDriver> {
  return openCgroupDriver({ host: host(ownPath), fs: kernel, daemonPid: DAEMON, sysRoot: sys, ...extra });
}

async function words(dir: string, file: string): Promise<string[]> {
  return (await kernel.control(dir, file)).split(/\s+/).filter(Boolean).sort();
}

beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'jobworker-fake-cgroup2-'));
  mount = path.join(tmp, 'cgroup');
  // A fake sysfs with one disk, sda (8:0), and its partition sda1 (8:1).
  sys = path.join(tmp, 'sys');
  const disk = path.join(sys, 'devices/pci0000:00/ata1/block/sda');
  mkdirSync(path.join(disk, 'sda1'), { recursive: true });
  writeFileSync(path.join(disk, 'dev'), '8:0\n');
  writeFileSync(path.join(disk, 'sda1/dev'), '8:1\n');
  writeFileSync(path.join(disk, 'sda1/partition'), '1\n');
  mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
  symlinkSync('../../devices/pci0000:00/ata1/block/sda', path.join(sys, 'dev/block/8:0'));
  symlinkSync('../../devices/pci0000:00/ata1/block/sda/sda1', path.join(sys, 'dev/block/8:1'));
});

afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('cgroup v2 delegation', () => {
  it('moves the daemon into <own>/jobworker/daemon, then enables the controllers down to jobs/', async () => {
    await boot();
    const driver = await open();
    assert.equal(driver.mode, 'unified');
    assert.equal(driver.jobsRoot, cg(`${SERVICE}/jobworker/jobs`));
    assert.deepEqual([...driver.controllers].sort(), ['cpu', 'io', 'memory', 'pids']);
    assert.equal(await kernel.control(cg(`${SERVICE}/jobworker/daemon`), 'cgroup.procs'), String(DAEMON));
    assert.equal(await kernel.control(cg(SERVICE), 'cgroup.procs'), '');
    for (const cgroupPath of [SERVICE, `${SERVICE}/jobworker`, `${SERVICE}/jobworker/jobs`]) {
      assert.deepEqual(await words(cg(cgroupPath), 'cgroup.subtree_control'), ['cpu', 'io', 'memory', 'pids'], cgroupPath);
    }
    // The move came first: the fake kernel, like the real one, refuses controllers above processes.
    const order = kernel.writes.map((write) => path.relative(mount, write.file));
    assert.ok(order.indexOf(`${SERVICE.slice(1)}/jobworker/daemon/cgroup.procs`) < order.indexOf(`${SERVICE.slice(1)}/cgroup.subtree_control`));
  });

  it('releaseRoot puts everything back: daemon in its cgroup, controllers off, directories gone', async () => {
    await boot();
    const driver = await open();
    await driver.releaseRoot();
    assert.equal(await kernel.control(cg(SERVICE), 'cgroup.procs'), String(DAEMON));
    assert.equal(await kernel.control(cg(SERVICE), 'cgroup.subtree_control'), '');
    assert.equal(existsSync(cg(`${SERVICE}/jobworker`)), false);
  });

  it('opened again by the same daemon (already in its leaf), finds the same root', async () => {
    await boot();
    await open();
    const again = await open(`${SERVICE}/jobworker/daemon`);
    assert.equal(again.jobsRoot, cg(`${SERVICE}/jobworker/jobs`));
  });

  it('a second root name in the same process: beside the first, not nested in its leaf; released in any order', async () => {
    await boot();
    const first = await openCgroupDriver({ host: host(SERVICE), fs: kernel, daemonPid: DAEMON, sysRoot: sys, rootName: 'jw-a' });
    // This process now sits in the first root's leaf, and /proc/self/cgroup says so.
    const second = await openCgroupDriver({ host: host(`${SERVICE}/jw-a/daemon`), fs: kernel, daemonPid: DAEMON, sysRoot: sys, rootName: 'jw-b' });
    assert.equal(second.jobsRoot, cg(`${SERVICE}/jw-b/jobs`));
    await createJobCgroup(second, 'j', { memoryBytes: 8 << 20 }, '/');
    assert.equal(await kernel.control(cg(`${SERVICE}/jw-b/jobs/identity.test/j`), 'memory.max'), String(8 << 20));
    await assert.rejects(first.releaseRoot(), /cannot move the daemon back into .*jobworker.service: another cgroup root beneath it/);
    await (await second.open({ id: 'j', slice: TEST_SLICE }))!.destroy();
    await second.releaseRoot();
    await first.releaseRoot();
    assert.equal(await kernel.control(cg(SERVICE), 'cgroup.procs'), String(DAEMON));
    assert.deepEqual(await kernel.children(cg(SERVICE)), []);
  });

  it('controllers the kernel has but did not delegate: a clear error naming them, nothing changed', async () => {
    await boot({ delegated: ['cpu', 'memory'] });
    await assert.rejects(open(), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'failed-precondition' &&
      error.message.includes(`controllers not delegated to ${cg(SERVICE)}: io, pids (it has: cpu memory)`) &&
      error.message.includes('Delegate=yes'));
    assert.equal(existsSync(cg(`${SERVICE}/jobworker`)), false);
    assert.equal(await kernel.control(cg(SERVICE), 'cgroup.procs'), String(DAEMON));
  });

  it('other processes in the daemon\'s cgroup: a clear error, and the daemon is put back', async () => {
    await boot({ procs: [DAEMON, 777] });
    await assert.rejects(open(), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'failed-precondition' &&
      /cannot enable cpu, memory, io, pids in .*jobworker.service\/cgroup.subtree_control: that cgroup holds processes \(777\)/.test(error.message));
    assert.deepEqual(await words(cg(SERVICE), 'cgroup.procs'), ['4242', '777']);
    assert.equal(existsSync(cg(`${SERVICE}/jobworker`)), false);
  });

  it('a controller the kernel lacks altogether is left out, and limits needing it are refused', async () => {
    await boot({ inKernel: ['cpu', 'memory', 'pids'], delegated: ['cpu', 'memory', 'pids'] });
    const driver = await open();
    assert.deepEqual([...driver.controllers].sort(), ['cpu', 'memory', 'pids']);
    await assert.rejects(createJobCgroup(driver, 'j', { io: [{ device: '8:0', readBps: 1 << 20 }] }, '/'), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'failed-precondition' && /limits.io: the io controller is not available/.test(error.message));
    assert.deepEqual(await driver.listJobs(), []);
  });

  it('a daemon in the root cgroup stays there (the root is exempt from the no-internal-processes rule)', async () => {
    await boot();
    await kernel.write(cg('cgroup.procs'), String(DAEMON));
    const driver = await open('/');
    assert.equal(driver.jobsRoot, cg('/jobworker/jobs'));
    assert.match(await kernel.control(mount, 'cgroup.procs'), /4242/);
    assert.equal(existsSync(cg('/jobworker/daemon')), false);
    await driver.releaseRoot();
    assert.equal(existsSync(cg('/jobworker')), false);
  });

  it('an explicit root: jobs in <root>/jobs, the root itself kept on release', async () => {
    await boot();
    await kernel.makeCgroupTree(cg('/jobs.slice'));
    const driver = await open(SERVICE, { root: '/jobs.slice' });
    assert.equal(driver.jobsRoot, cg('/jobs.slice/jobs'));
    assert.equal(await kernel.control(cg(SERVICE), 'cgroup.procs'), String(DAEMON)); // not ours to move
    await driver.releaseRoot();
    assert.equal(existsSync(cg('/jobs.slice/jobs')), false);
    assert.equal(existsSync(cg('/jobs.slice')), true);
  });
});

describe('cgroup v2 job cgroups', () => {
  it('each limit lands in its file', async () => {
    await boot();
    const driver = await open();
    const job = await createJobCgroup(driver, 'job-1', {
      cpu: 0.5,
      cpuWeight: 200,
      memoryBytes: 64 << 20,
      memoryHighBytes: 48 << 20,
      pids: 99,
      io: [{ device: '8:1', readBps: 5_000_000, writeBps: 1_000_000 }],
    }, '/');
    const dir = cg(`${SERVICE}/jobworker/jobs/identity.test/job-1`);
    assert.equal(job.path, dir);
    assert.equal(await kernel.control(dir, 'cpu.max'), '50000 100000');
    assert.equal(await kernel.control(dir, 'cpu.weight'), '200');
    assert.equal(await kernel.control(dir, 'memory.max'), String(64 << 20));
    assert.equal(await kernel.control(dir, 'memory.swap.max'), '0');
    assert.equal(await kernel.control(dir, 'memory.high'), String(48 << 20));
    assert.equal(await kernel.control(dir, 'memory.oom.group'), '1');
    assert.equal(await kernel.control(dir, 'pids.max'), '99');
    // The partition was taken for its whole disk.
    assert.equal(await kernel.control(dir, 'io.max'), '8:0 rbps=5000000 wbps=1000000');
  });

  it('no limits: only the pids default and the OOM group', async () => {
    await boot();
    const driver = await open();
    await createJobCgroup(driver, 'job-2', {}, '/');
    const dir = cg(`${SERVICE}/jobworker/jobs/identity.test/job-2`);
    assert.equal(await kernel.control(dir, 'pids.max'), '4096');
    assert.equal(await kernel.control(dir, 'memory.oom.group'), '1');
    assert.equal(await kernel.control(dir, 'memory.max'), 'max');
    assert.equal(await kernel.control(dir, 'cpu.max'), 'max 100000');
    assert.equal(await kernel.control(dir, 'io.max'), '');
  });

  it('stats from cpu.stat, memory.current/peak/events, pids.current, io.stat', async () => {
    await boot();
    const driver = await open();
    const job = await createJobCgroup(driver, 'job-3', {}, '/');
    await kernel.setStat(job.path, 'cpu.stat', 'usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300\n');
    await kernel.setStat(job.path, 'memory.current', '1048576\n');
    await kernel.setStat(job.path, 'memory.peak', '4194304\n');
    await kernel.setStat(job.path, 'memory.events', 'low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 1\n');
    await kernel.setStat(job.path, 'pids.current', '3\n');
    await kernel.setStat(job.path, 'io.stat', '8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n');
    assert.deepEqual(await job.stats(), {
      cpuUsageMicros: 2000,
      cpuUserMicros: 1500,
      cpuSystemMicros: 500,
      cpuThrottledPeriods: 4,
      cpuThrottledMicros: 300,
      memoryCurrentBytes: 1048576,
      memoryPeakBytes: 4194304,
      oomKills: 2,
      pidsCurrent: 3,
      io: [{ device: '8:0', readBytes: 4096, writeBytes: 0, readOps: 1, writeOps: 0 }],
    });
    unlinkSync(path.join(job.path, 'memory.peak')); // kernel < 5.19
    assert.equal((await job.stats()).memoryPeakBytes, null);
  });

  it('ids, duplicates, reopening', async () => {
    await boot();
    const driver = await open();
    await createJobCgroup(driver, 'job-a', {}, '/');
    await createJobCgroup(driver, 'job-b', {}, '/');
    assert.deepEqual(await driver.listJobs(), [{ id: 'job-a', slice: TEST_SLICE }, { id: 'job-b', slice: TEST_SLICE }]);
    await assert.rejects(createJobCgroup(driver, 'job-a', {}, '/'), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'already-exists' && /job job-a already exists/.test(error.message));
    await assert.rejects(createJobCgroup(driver, '../escape', {}, '/'), (error: unknown) => error instanceof ValidationError && error.field === 'id');
    assert.equal((await driver.open({ id: 'job-b', slice: TEST_SLICE }))?.path, cg(`${SERVICE}/jobworker/jobs/identity.test/job-b`));
    assert.equal(await driver.open({ id: 'job-c', slice: TEST_SLICE }), undefined);
  });

  it('a write the kernel refuses: the error names file, value and errno; nothing is left behind', async () => {
    await boot();
    const driver = await open();
    kernel.failWrites.set('pids.max', 'EINVAL');
    await assert.rejects(createJobCgroup(driver, 'job-x', { pids: 12 }, '/'), (error: unknown) =>
      error instanceof SystemError && error.code === 'EINVAL' &&
      error.message === `write "12" to ${cg(`${SERVICE}/jobworker/jobs/identity.test/job-x/pids.max`)}: EINVAL`);
    assert.deepEqual(await driver.listJobs(), []);
  });

  it('invalid limits are refused before any cgroup exists', async () => {
    await boot();
    const driver = await open();
    const writes = kernel.writes.length;
    await assert.rejects(createJobCgroup(driver, 'job-y', { cpu: -1 }, '/'), ValidationError);
    await assert.rejects(driver.plan({ id: 'job-y', identity: 'test' }, { io: [{ device: '9:9', readBps: 1 << 20 }] }, '/'), /9:9 is not a block device/);
    assert.deepEqual(await driver.listJobs(), []);
    assert.equal(kernel.writes.length, writes);
  });

  it('signalAll signals a pid only if the job still lists it once pinned: a pid that left the job meanwhile is never signalled', async () => {
    await boot();
    const driver = await open();
    const job = await createJobCgroup(driver, 'job-pinned', {}, '/');
    const procs = path.join(job.path, 'cgroup.procs');
    writeFileSync(procs, '101\n102\n');
    const sent: number[] = [];
    const released: number[] = [];
    const signaller = {
      // While 102 is pinned, it dies and its pid goes to a process outside the job.
      pin: (pid: number) => {
        if (pid === 102) writeFileSync(procs, '101\n');
        return pid + 1000;
      },
      send: (handle: number) => (sent.push(handle - 1000), true),
      release: (handle: number) => void released.push(handle - 1000),
    };
    const before = useKillSignaller(signaller);
    try {
      assert.equal(await job.signalAll('SIGTERM'), 1);
    } finally {
      useKillSignaller(before);
    }
    assert.deepEqual(sent, [101]);
    assert.deepEqual(released.sort(), [101, 102], 'every pin released');
    writeFileSync(procs, '');
    await job.destroy();
  });

  it('a kill that meets the cgroup being removed (ENODEV, or ENOENT once gone) is not an error: it has nothing left to kill', async () => {
    await boot();
    const driver = await open();
    const job = await createJobCgroup(driver, 'job-dying', {}, '/');
    for (const errno of ['ENODEV', 'ENOENT']) {
      kernel.failWrites.set('cgroup.kill', errno);
      kernel.failWrites.set('cgroup.freeze', errno);
      await job.kill();
      assert.equal(await job.signalAll('SIGTERM'), 0);
    }
    kernel.failWrites.set('cgroup.kill', 'EACCES');
    await assert.rejects(job.kill(), /cgroup.kill: EACCES/);
    kernel.failWrites.clear();
    await job.destroy();
  });

  it('destroy removes the cgroup, twice is fine; releaseRoot refuses while jobs remain', async () => {
    await boot();
    const driver = await open();
    const job = await createJobCgroup(driver, 'job-z', {}, '/');
    await assert.rejects(driver.releaseRoot(), /job cgroups remain .*identity\.test\/job-z/);
    await job.destroy();
    await job.destroy();
    assert.equal(existsSync(job.path), false);
    assert.deepEqual(await driver.listJobs(), []);
    await driver.releaseRoot();
  });
});
