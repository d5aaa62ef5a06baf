// A job's cgroup plan against a fake kernel: the one-op-at-a-time runner, the stats snapshot read in
// one batch (no parser reads behind its back), the settle ops (stats and removal in one go, or not
// removed when a process is left) read back by file, and create ops whose failure is named. The
// addon runs the same ops against the real cgroupfs in the integration tests.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { runOpsOneByOne, type CgroupFs, type CgroupOp } from '../../src/cgroup/cgroup-fs';
import type { CgroupHost } from '../../src/cgroup/host';
import { openCgroupDriver, useKillSignaller } from '../../src/cgroup/index';
import { JobworkerError, SystemError } from '../../src/errors';
import { createJobCgroup, TEST_SLICE } from '../helpers/cgroup-plan';
import { bootFakeV1Host, FakeCgroupKernel } from '../helpers/fake-cgroup-kernel';

let tmp: string;

beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'jobworker-cgroup-batch-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** The fake kernel, with a batch of its own that counts what it reads, and reads made outside batches. */
class CountingFs implements CgroupFs {
  batchedReads: string[] = [];
  directReads: string[] = [];
  constructor(readonly kernel: FakeCgroupKernel) {}
  mkdir(dir: string): Promise<void> {
    return this.kernel.mkdir(dir);
  }
  rmdir(dir: string): Promise<void> {
    return this.kernel.rmdir(dir);
  }
  write(file: string, value: string): Promise<void> {
    return this.kernel.write(file, value);
  }
  children(dir: string): Promise<string[]> {
    return this.kernel.children(dir);
  }
  read(file: string): Promise<string> {
    this.directReads.push(file);
    return this.kernel.read(file);
  }
  run(ops: readonly CgroupOp[]) {
    for (const op of ops) if (op.op === 'read') this.batchedReads.push(op.path);
    return runOpsOneByOne(this.kernel, ops);
  }
}

function hybridHost() {
  return bootFakeV1Host(tmp, 'hybrid');
}

async function unifiedHost(): Promise<{ kernel: FakeCgroupKernel; host: CgroupHost }> {
  const mountPoint = path.join(tmp, 'unified');
  const kernel = new FakeCgroupKernel([{ mountPoint, version: 2, controllers: ['cpu', 'memory', 'io', 'pids'] }]);
  await kernel.boot([]);
  await kernel.makeCgroupTree(path.join(mountPoint, 'jobworker.service'), [process.pid]);
  await kernel.setControllers(path.join(mountPoint, 'jobworker.service'), ['cpu', 'memory', 'io', 'pids']);
  return { kernel, host: { mode: 'unified', v1: [], unified: { mountPoint, mountRoot: '/', ownPath: '/jobworker.service' } } };
}

describe('runOpsOneByOne', () => {
  it('runs in order, skips an optional op on ENOENT, stops at the first failure and says which', async () => {
    const { kernel } = await hybridHost();
    const dir = path.join(tmp, 'pids', 'a');
    const result = await runOpsOneByOne(kernel, [
      { op: 'mkdir', path: dir },
      { op: 'write', path: path.join(dir, 'pids.max'), value: '7' },
      { op: 'read', path: path.join(dir, 'pids.max') },
      { op: 'read', path: path.join(dir, 'no.such.file'), optional: true },
      { op: 'write', path: path.join(dir, 'no.such.file'), value: '1' },
      { op: 'rmdir', path: dir },
    ]);
    assert.equal(result.completed, 4);
    assert.deepEqual(result.reads.slice(0, 4), [null, null, '7\n', null]);
    assert.equal((result.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
    assert.ok(existsSync(dir), 'the op after the failure did not run');
  });
});

describe('stats and settle in one batch', () => {
  for (const [mode, boot] of [
    ['hybrid', hybridHost],
    ['unified', unifiedHost],
  ] as const) {
    it(`${mode}: the snapshot is read in one batch, nothing behind its back`, async () => {
      const { kernel, host } = await boot();
      const fs = new CountingFs(kernel);
      const driver = await openCgroupDriver({ host, fs, rootName: 'jw' });
      const job = await createJobCgroup(driver, 'job-a', { memoryBytes: 64 << 20, pids: 10 }, '/');
      fs.directReads = [];
      const stats = await job.stats();
      assert.equal(stats.oomKills, 0);
      assert.deepEqual(fs.directReads, []);
      assert.ok(fs.batchedReads.length >= 3);
    });

    it(`${mode}: the settle ops of an empty job read the stats, then remove every directory`, async () => {
      const { kernel, host } = await boot();
      const fs = new CountingFs(kernel);
      const driver = await openCgroupDriver({ host, fs, rootName: 'jw' });
      const job = await createJobCgroup(driver, 'job-b', { pids: 10 }, '/');
      fs.directReads = [];
      const settled = job.plan.settled(await fs.run(job.plan.settleOps));
      assert.equal(settled.empty, true);
      assert.equal(settled.removed, true);
      assert.equal(settled.stats.pidsCurrent, 0);
      assert.deepEqual(fs.directReads, []);
      assert.deepEqual(await driver.listJobs(), []);
      await job.destroy(); // idempotent after settle removed it
    });
  }

  it('settle ops with a process left: not removed, and destroy() still removes it once it is gone', async () => {
    const { kernel, host } = await hybridHost();
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'job-c', {}, '/');
    // A process that outlived the main one, as the kernel would show it.
    writeFileSync(path.join(job.path, 'cgroup.events'), 'populated 1\nfrozen 0\n');
    writeFileSync(path.join(tmp, 'pids', 'jw', 'jobs', TEST_SLICE, 'job-c', 'cgroup.procs'), '4242\n');
    const settled = job.plan.settled(await kernel.run(job.plan.settleOps));
    assert.equal(settled.empty, false);
    assert.equal(settled.removed, false);
    assert.ok(existsSync(job.path));
    writeFileSync(path.join(job.path, 'cgroup.events'), 'populated 0\nfrozen 0\n');
    writeFileSync(path.join(tmp, 'pids', 'jw', 'jobs', TEST_SLICE, 'job-c', 'cgroup.procs'), '');
    await job.destroy();
    assert.deepEqual(await driver.listJobs(), []);
  });
});

describe('create ops', () => {
  it('a limit the kernel refuses: the error names the file and value, and nothing is left', async () => {
    const { kernel, host } = await hybridHost();
    kernel.failWrites.set('pids.max', 'EINVAL');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    await assert.rejects(createJobCgroup(driver, 'job-d', { memoryBytes: 64 << 20, pids: 10 }, '/'), (error) =>
      error instanceof SystemError && /write "10" to .*pids\/jw\/jobs\/identity\.test\/job-d\/pids.max/.test(error.message) && /EINVAL/.test(error.message));
    assert.deepEqual(await driver.listJobs(), []);
  });

  it('plan() touches nothing; its ops create the job; an existing cgroup is already-exists', async () => {
    const { kernel, host } = await unifiedHost();
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const planned = await driver.plan({ id: 'job-e', identity: 'test' }, { cpu: 0.5 }, '/');
    assert.deepEqual(await driver.listJobs(), []);
    // The identity's slice first (it does not exist yet: this job makes it), then the job in it.
    assert.deepEqual(
      planned.createOps.map((op) => `${op.op} ${path.basename(op.path)}`),
      ['mkdir identity.test', 'write cgroup.subtree_control', 'mkdir job-e', 'write pids.max'],
    );
    // Once the job's process has exec'd: its CPU quota (the spawn's own work is not the job's to pay
    // for), and the OOM group (not while the spawn shares the daemon's memory).
    assert.deepEqual(planned.startedOps.map((op) => `${op.op} ${path.relative(path.dirname(planned.cgroup.path), op.path)}`), ['write job-e/cpu.max', 'write job-e/memory.oom.group']);
    const result = await kernel.run(planned.createOps);
    assert.equal(result.error, undefined);
    planned.createOpsRan('created');
    assert.deepEqual(await driver.listJobs(), [{ id: 'job-e', slice: 'identity.test' }]);
    // The next plan finds the slice there: only the job's own ops.
    const duplicate = await driver.plan({ id: 'job-e', identity: 'test' }, {}, '/');
    assert.deepEqual(duplicate.createOps.map((op) => `${op.op} ${path.basename(op.path)}`).slice(0, 1), ['mkdir job-e']);
    const error = duplicate.creationError(await kernel.run(duplicate.createOps));
    assert.ok(error instanceof JobworkerError && error.kind === 'already-exists' && /job job-e already exists/.test(error.message), String(error));
    await duplicate.release();
    await planned.cgroup.destroy();
    await planned.release();
    await driver.releaseRoot();
  });
});

describe('settle on a legacy (v1-only) host', () => {
  it('whether a process is left comes from the freezer cgroup.procs; stats and removal in the same ops', async () => {
    const { kernel, host } = await bootFakeV1Host(tmp, 'legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const busy = await createJobCgroup(driver, 'job-l1', { pids: 10 }, '/');
    writeFileSync(path.join(busy.path, 'cgroup.procs'), '4242\n');
    const left = busy.plan.settled(await kernel.run(busy.plan.settleOps));
    assert.deepEqual([left.empty, left.removed], [false, false]);
    writeFileSync(path.join(busy.path, 'cgroup.procs'), '');
    const empty = busy.plan.settled(await kernel.run(busy.plan.settleOps));
    assert.deepEqual([empty.empty, empty.removed], [true, true]);
    assert.deepEqual(await driver.listJobs(), []);
  });

  it('processes that die between the read and the removal: removed means empty (no kill, no wait, no stats of a cgroup that is gone)', async () => {
    const { kernel, host } = await bootFakeV1Host(tmp, 'legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'job-l3', {}, '/');
    writeFileSync(path.join(job.path, 'cgroup.procs'), '4242\n');
    const whileBusy = await kernel.run(job.plan.settleOps); // the reads see the process; the removal fails
    writeFileSync(path.join(job.path, 'cgroup.procs'), '');
    const afterItDied = await kernel.run(job.plan.settleOps); // the removal goes through
    const settled = job.plan.settled({ ...afterItDied, reads: whileBusy.reads });
    assert.deepEqual([settled.empty, settled.removed], [true, true]);
  });

  it('kill without cgroup.kill pins each pid and kills it only if the job still lists it then (a pid that left the job is never signalled)', async () => {
    const { kernel, host } = await bootFakeV1Host(tmp, 'legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'job-l4', {}, '/');
    const procs = path.join(job.path, 'cgroup.procs');
    writeFileSync(procs, '101\n102\n');
    const killed: number[] = [];
    const released: number[] = [];
    const before = useKillSignaller({
      // While 102 is pinned, it dies and its pid goes to a process outside the job.
      pin: (pid) => {
        if (pid === 102) writeFileSync(procs, '101\n');
        return pid + 1000;
      },
      send: (handle) => {
        killed.push(handle - 1000);
        writeFileSync(procs, ''); // the kill works: the job is empty
        return true;
      },
      release: (handle) => void released.push(handle - 1000),
    });
    try {
      await job.kill();
    } finally {
      useKillSignaller(before);
    }
    assert.deepEqual(killed, [101]);
    assert.deepEqual(released.sort(), [101, 102], 'every pin released');
    await job.destroy();
  });

  it('a cgroup that is gone is reported as gone, not as empty', async () => {
    const { kernel, host } = await bootFakeV1Host(tmp, 'legacy');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw' });
    const job = await createJobCgroup(driver, 'job-l2', {}, '/');
    await job.destroy();
    assert.throws(() => job.plan.settled({ completed: job.plan.settleOps.length, reads: job.plan.settleOps.map(() => null) }), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'not-found');
  });
});
