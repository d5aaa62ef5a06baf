// Identity slices against a fake kernel: names that cannot escape or collide, the slice made by the
// first job's create ops and then reused, waits while one is made or removed, idle slices kept up to
// a bound, the limits each hierarchy's slice carries, job limits checked against them, and the root
// lock's holder found in /proc/locks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { CgroupFs, CgroupOp, OpsReport } from '../../src/cgroup/cgroup-fs';
import type { CgroupHost } from '../../src/cgroup/host';
import { openCgroupDriver, sliceNameOf, type Limits } from '../../src/cgroup/index';
import { lockHolders } from '../../src/cgroup/root-lock';
import { isSliceName } from '../../src/cgroup/slice-name';
import { SliceRegistry, type SliceOps } from '../../src/cgroup/slices';
import { ValidationError } from '../../src/errors';
import { createJobCgroup } from '../helpers/cgroup-plan';
import { bootFakeV1Host, FakeCgroupKernel } from '../helpers/fake-cgroup-kernel';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'jobworker-slices-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('slice names', () => {
  it('keep letters, digits, "." and "-", escape every other byte; one path component, never a job id', () => {
    assert.equal(sliceNameOf('alice'), 'identity.alice');
    assert.equal(sliceNameOf('ci-bot.example.com'), 'identity.ci-bot.example.com');
    assert.equal(sliceNameOf('a_b'), 'identity.a_5fb');
    assert.equal(sliceNameOf('../../etc'), 'identity..._2f.._2fetc');
    assert.equal(sliceNameOf('x/y'), 'identity.x_2fy');
    assert.equal(sliceNameOf('é'), 'identity._c3_a9');
    assert.equal(sliceNameOf(''), 'identity.');
    for (const identity of ['alice', '../..', 'a\0b', ' ', 'CN=x,O=y', '\n']) {
      const name = sliceNameOf(identity);
      assert.ok(isSliceName(name) && !name.includes('/') && !name.includes('\0') && name !== '..', name);
      assert.ok(!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name), `${name} could pass for a job id`);
    }
  });

  it('are injective: escapes, hashed long names and near-collisions all differ', () => {
    const identities = ['a_5fb', 'a_b', 'a b', 'a_20b', '', '_', '__', 'x'.repeat(300), `${'x'.repeat(299)}y`, 'é', '_c3_a9', 'x'.repeat(128), 'x'.repeat(129)];
    const names = identities.map(sliceNameOf);
    assert.equal(new Set(names).size, identities.length, names.join('\n'));
  });

  it('a long identity keeps a readable start and a SHA-256 of the whole, within one path component', () => {
    const name = sliceNameOf(`${'é'.repeat(100)}tail`);
    assert.match(name, /^identity\.(_[0-9a-f]{2})+_h[0-9a-f]{64}$/);
    assert.ok(name.length <= 255);
  });
});

/** A registry over a fake "kernel" that only records which slices exist, with creation and removal we can hold. */
function fakeRegistry(maxIdle = 2) {
  const existing = new Set<string>();
  const runs: string[][] = [];
  let hold: Promise<void> | null = null;
  const ops: SliceOps = {
    createOps: async (name) => [{ op: 'mkdir', path: name }],
    removeOps: (name) => [{ op: 'rmdir', path: name, optional: true }],
    exists: async (name) => existing.has(name),
  };
  const fs = {
    async run(batch: readonly CgroupOp[]): Promise<OpsReport> {
      runs.push(batch.map((op) => `${op.op} ${op.path}`));
      if (hold !== null) await hold;
      for (const op of batch) if (op.op === 'rmdir') existing.delete(op.path);
      return { completed: batch.length, reads: batch.map(() => null) };
    },
  } as unknown as CgroupFs;
  return {
    registry: new SliceRegistry(fs, ops, maxIdle),
    existing,
    runs,
    holdRemovals(): () => void {
      let release!: () => void;
      hold = new Promise((resolve) => (release = resolve));
      return () => {
        hold = null;
        release();
      };
    },
  };
}

describe('SliceRegistry', () => {
  it('the first job makes the slice; jobs planned meanwhile wait for it, then reuse it', async () => {
    const { registry, existing } = fakeRegistry();
    const first = await registry.enter('alice');
    assert.deepEqual(first.createOps, [{ op: 'mkdir', path: 'identity.alice' }]);
    let secondDone = false;
    const second = registry.enter('alice').then((lease) => ((secondDone = true), lease));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(secondDone, false, 'waits while the first job\'s spawn makes the slice');
    existing.add('identity.alice');
    first.createOpsRan('created');
    assert.deepEqual((await second).createOps, []);
  });

  it('jobs planned while the first one\'s create ops are still being built wait too (no second mkdir)', async () => {
    const existing = new Set<string>();
    let release!: () => void;
    const built = new Promise<void>((resolve) => (release = resolve));
    const slow: SliceOps = {
      createOps: async (name) => {
        await built;
        return [{ op: 'mkdir', path: name }];
      },
      removeOps: () => [],
      exists: async (name) => existing.has(name),
    };
    const slowRegistry = new SliceRegistry({} as CgroupFs, slow);
    const entering = Promise.all([1, 2, 3].map(async () => {
      const lease = await slowRegistry.enter('carol');
      if (lease.createOps.length > 0) {
        existing.add(lease.name);
        lease.createOpsRan('created');
      }
      return lease;
    }));
    // The other two are planned while the first one's ops are still being built.
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const leases = await entering;
    assert.equal(leases.filter((lease) => lease.createOps.length > 0).length, 1, 'one job makes the slice');
  });

  it('a creation that was undone: the next job looks again and makes it', async () => {
    const { registry } = fakeRegistry();
    const first = await registry.enter('bob');
    const second = registry.enter('bob');
    first.createOpsRan('undone');
    await first.leave();
    assert.deepEqual((await second).createOps, [{ op: 'mkdir', path: 'identity.bob' }]);
  });

  it('keeps idle slices up to its bound, removing the least recently used beyond it', async () => {
    const { registry, existing, runs } = fakeRegistry(2);
    for (const identity of ['a', 'b', 'c']) {
      const lease = await registry.enter(identity);
      existing.add(sliceNameOf(identity));
      lease.createOpsRan('created');
      await lease.leave();
    }
    assert.deepEqual([...existing].sort(), ['identity.b', 'identity.c']);
    assert.deepEqual(runs, [['rmdir identity.a']]);
    // Reused: no creation, and it moves to the back of the line.
    const again = await registry.enter('b');
    assert.deepEqual(again.createOps, []);
    await again.leave();
    const d = await registry.enter('d');
    existing.add('identity.d');
    d.createOpsRan('created');
    await d.leave();
    assert.deepEqual([...existing].sort(), ['identity.b', 'identity.d']);
  });

  it('a job planned while its slice is being removed waits, then makes it again', async () => {
    const { registry, existing, holdRemovals } = fakeRegistry(0);
    const lease = await registry.enter('eve');
    existing.add('identity.eve');
    lease.createOpsRan('created');
    const release = holdRemovals();
    const removal = lease.leave();
    const next = registry.enter('eve');
    let planned = false;
    void next.then(() => (planned = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(planned, false);
    release();
    await removal;
    assert.deepEqual((await next).createOps, [{ op: 'mkdir', path: 'identity.eve' }]);
  });
});

function unifiedHost(kernelMount: string): CgroupHost {
  return { mode: 'unified', v1: [], unified: { mountPoint: kernelMount, mountRoot: '/', ownPath: '/' } };
}

describe('slice limits', () => {
  const sliceLimits = (): Limits => ({ memoryBytes: 256 << 20, pids: 100, cpu: 1, cpuWeight: 50 });

  it('cgroup v2: the slice carries the limits and enables every controller for its jobs; no OOM group', async () => {
    const mount = path.join(tmp, 'cgroup');
    const kernel = new FakeCgroupKernel([{ mountPoint: mount, version: 2, controllers: ['cpu', 'memory', 'io', 'pids'] }]);
    await kernel.boot([]);
    const driver = await openCgroupDriver({ host: unifiedHost(mount), fs: kernel, rootName: 'jw', sliceLimits });
    const job = await createJobCgroup(driver, 'job-1', {}, '/', 'alice');
    const slice = path.join(mount, 'jw/jobs/identity.alice');
    assert.equal(path.dirname(job.path), slice);
    assert.equal(await kernel.control(slice, 'memory.max'), String(256 << 20));
    assert.equal(await kernel.control(slice, 'memory.swap.max'), '0');
    assert.equal(await kernel.control(slice, 'memory.oom.group'), '0');
    assert.equal(await kernel.control(slice, 'pids.max'), '100');
    assert.equal(await kernel.control(slice, 'cpu.max'), '100000 100000');
    assert.equal(await kernel.control(slice, 'cpu.weight'), '50');
    assert.deepEqual((await kernel.control(slice, 'cgroup.subtree_control')).split(' ').sort(), ['cpu', 'io', 'memory', 'pids']);
    // The job's own pids default is no higher than its slice's.
    assert.equal(await kernel.control(job.path, 'pids.max'), '100');
    assert.deepEqual(job.plan.limits, { pids: 100 });
    assert.deepEqual(await driver.sliceLimits('alice'), sliceLimits());
    assert.equal((await driver.sliceStats('alice'))?.pidsCurrent, 0);
    assert.equal(await driver.sliceStats('nobody'), null);
    await job.destroy();
    await driver.releaseRoot();
    assert.deepEqual(await kernel.children(mount), []);
  });

  it('cgroup v1: each hierarchy\'s slice carries its limits, hierarchical memory first', async () => {
    const { kernel, host, at } = await bootFakeV1Host(tmp, 'hybrid');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw', sliceLimits });
    const job = await createJobCgroup(driver, 'job-2', {}, '/', 'alice');
    const memory = at('memory', '/jw/jobs/identity.alice');
    const writes = kernel.writes.filter((w) => w.file.startsWith(memory + '/')).map((w) => path.basename(w.file));
    assert.equal(writes[0], 'memory.use_hierarchy');
    assert.equal(await kernel.control(memory, 'memory.use_hierarchy'), '1');
    assert.equal(await kernel.control(memory, 'memory.limit_in_bytes'), String(256 << 20));
    assert.equal(await kernel.control(at('pids', '/jw/jobs/identity.alice'), 'pids.max'), '100');
    assert.equal(await kernel.control(at('cpu,cpuacct', '/jw/jobs/identity.alice'), 'cpu.cfs_quota_us'), '100000');
    assert.ok(statSync(at('unified', '/jw/jobs/identity.alice/job-2')).isDirectory());
    await job.destroy();
    await driver.releaseRoot();
  });

  it('a job limit above its slice\'s is refused, naming the quota; nothing is made', async () => {
    const { kernel, host } = await bootFakeV1Host(tmp, 'hybrid');
    const driver = await openCgroupDriver({ host, fs: kernel, rootName: 'jw', sliceLimits });
    await assert.rejects(createJobCgroup(driver, 'job-3', { memoryBytes: 512 << 20 }, '/', 'alice'), (error: unknown) =>
      error instanceof ValidationError && error.field === 'limits.memoryBytes' && /at most 268435456, its identity's memory quota/.test(error.message));
    await assert.rejects(createJobCgroup(driver, 'job-3', { pids: 101 }, '/', 'alice'), /limits.pids: must be at most 100/);
    assert.deepEqual(await driver.listJobs(), []);
    await driver.releaseRoot();
  });

  it('an IO limit of a slice must name its device (cgroup v2), and is refused on v1, whose blkio cannot bound a subtree', async () => {
    const mount = path.join(tmp, 'cgroup');
    const kernel = new FakeCgroupKernel([{ mountPoint: mount, version: 2, controllers: ['cpu', 'memory', 'io', 'pids'] }]);
    await kernel.boot([]);
    const io = (): Limits => ({ io: [{ readBps: 1 << 20 }] });
    const driver = await openCgroupDriver({ host: unifiedHost(mount), fs: kernel, rootName: 'jw', sliceLimits: io });
    await assert.rejects(createJobCgroup(driver, 'job-4', {}, '/', 'alice'), /sliceLimits.io\[0\].device: is required for an identity/);
    await driver.releaseRoot();
    const v1 = await bootFakeV1Host(path.join(tmp, 'v1'), 'hybrid');
    const hybrid = await openCgroupDriver({ host: v1.host, fs: v1.kernel, rootName: 'jw', sliceLimits: io });
    await assert.rejects(createJobCgroup(hybrid, 'job-5', {}, '/', 'alice'), /sliceLimits.io: an identity's IO limit needs cgroup v2 \(this host is hybrid/);
    await hybrid.releaseRoot();
  });
});

describe('root lock holders', () => {
  it('are read from /proc/locks by device and inode; waiters ("->") are not holders', () => {
    const dir = path.join(tmp, 'root');
    writeFileSync(dir, '');
    const stat = statSync(dir, { bigint: true });
    const major = Number((stat.dev >> 8n) & 0xfffn).toString(16).padStart(2, '0');
    const minor = Number(stat.dev & 0xffn).toString(16).padStart(2, '0');
    const locks = path.join(tmp, 'locks');
    writeFileSync(
      locks,
      [
        `1: FLOCK  ADVISORY  WRITE 4321 ${major}:${minor}:${stat.ino} 0 EOF`,
        `1: -> FLOCK  ADVISORY  WRITE 999 ${major}:${minor}:${stat.ino} 0 EOF`,
        `2: POSIX  ADVISORY  WRITE 555 ${major}:${minor}:${stat.ino + 1n} 0 EOF`,
      ].join('\n'),
    );
    assert.deepEqual(lockHolders(dir, locks), [4321]);
  });
});
