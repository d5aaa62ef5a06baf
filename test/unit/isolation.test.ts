// The rules that make a job's isolation safe, and the dynamic uid allocator, against a fake user
// database (no root, no processes).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ValidationError } from '../../src/errors';
import { DynamicUids, checkDynamicUidRange } from '../../src/worker/dynamic-uids';
import { resolveIsolation, resolveIsolationDefaults, type IsolationContext, type JobIsolationSpec } from '../../src/worker/isolation';
import type { UserDatabase } from '../../src/worker/user-database';

const context: IsolationContext = {
  defaults: resolveIsolationDefaults('defaults', undefined),
  hiddenPaths: ['/var/lib/jobworker', '/var/lib/jobworker-scratch', '/etc/jobworker'],
  dynamicUser: false,
};

function refuses(spec: JobIsolationSpec, ctx: IsolationContext, field: string, reason: RegExp): void {
  assert.throws(() => resolveIsolation(spec, ctx), (e: unknown) => e instanceof ValidationError && e.field === field && reason.test(e.message));
}

describe('job isolation', () => {
  it('every namespace is on by default, the host network, a writable root, no binds', () => {
    assert.deepEqual(resolveIsolation(undefined, context), {
      namespaces: { pid: true, mount: true, cgroup: true, ipc: true, uts: true },
      network: 'host',
      readOnlyRoot: false,
      mounts: [],
    });
  });

  it('a job may give up a namespace or choose its network over the defaults', () => {
    const isolation = resolveIsolation({ namespaces: { pid: false, uts: false }, network: 'none', readOnlyRoot: true }, context);
    assert.deepEqual(isolation.namespaces, { pid: false, mount: true, cgroup: true, ipc: true, uts: false });
    assert.equal(isolation.network, 'none');
    assert.equal(isolation.readOnlyRoot, true);
    const strict = { ...context, defaults: resolveIsolationDefaults('defaults', { network: 'none', readOnlyRoot: true }) };
    assert.equal(resolveIsolation({}, strict).network, 'none');
    assert.equal(resolveIsolation({ network: 'host' }, strict).network, 'host');
  });

  it('a dynamic uid always gets its own mount namespace and a read-only root', () => {
    const dynamic = { ...context, dynamicUser: true };
    const isolation = resolveIsolation(undefined, dynamic);
    assert.equal(isolation.namespaces.mount, true);
    assert.equal(isolation.readOnlyRoot, true);
    refuses({ namespaces: { mount: false } }, dynamic, 'isolation.namespaces.mount', /dynamic uid always has its own mount namespace/);
    refuses({ readOnlyRoot: false }, dynamic, 'isolation.readOnlyRoot', /dynamic uid always has a read-only root/);
    const hostMountsByDefault = { ...dynamic, defaults: resolveIsolationDefaults('defaults', { namespaces: { mount: false } }) };
    assert.equal(resolveIsolation(undefined, hostMountsByDefault).namespaces.mount, true, 'a default never weakens a dynamic user');
  });

  it('binds: absolute paths, never showing a hidden directory, only with a mount namespace, at most 16', () => {
    const bind = (source: string, target: string, readOnly = false) => ({ source, target, readOnly });
    assert.deepEqual(resolveIsolation({ mounts: [bind('/srv/data/', '/data', true)] }, context).mounts, [bind('/srv/data', '/data', true)]);
    refuses({ mounts: [bind('srv', '/data')] }, context, 'isolation.mounts[0].source', /absolute/);
    refuses({ mounts: [bind('/srv', '/')] }, context, 'isolation.mounts[0].target', /must not be \//);
    refuses({ mounts: [bind('/', '/host')] }, context, 'isolation.mounts[0].source', /would show \/var\/lib\/jobworker/);
    refuses({ mounts: [bind('/var/lib', '/x')] }, context, 'isolation.mounts[0].source', /would show/);
    refuses({ mounts: [bind('/etc/jobworker/../jobworker/tls', '/x')] }, context, 'isolation.mounts[0].source', /would show \/etc\/jobworker/);
    refuses({ mounts: [bind('/var/lib/jobworker-scratch/other-job', '/x')] }, context, 'isolation.mounts[0].source', /would show/);
    assert.doesNotThrow(() => resolveIsolation({ mounts: [bind('/var/lib/jobworker-old', '/x')] }, context), 'a sibling with a common prefix is not inside');
    refuses({ namespaces: { mount: false }, mounts: [bind('/srv', '/srv')] }, context, 'isolation.mounts', /need the mount namespace/);
    refuses({ namespaces: { mount: false }, readOnlyRoot: true }, context, 'isolation.readOnlyRoot', /needs the mount namespace/);
    refuses({ mounts: Array(17).fill(bind('/srv', '/srv')) }, context, 'isolation.mounts', /at most 16/);
    refuses({ namespaces: { net: false } as never }, context, 'isolation.namespaces.net', /is not a namespace/);
    refuses({ network: 'bridge' as never }, context, 'isolation.network', /"host" or "none"/);
  });
});

function fakeDatabase(knownUids: number[], knownGids: number[] = []): UserDatabase & { batches: number } {
  const db = {
    batches: 0,
    user: () => Promise.resolve(null),
    group: () => Promise.resolve(null),
    groupsOf: () => Promise.resolve([]),
    knownIds(database: 'passwd' | 'group', ids: readonly number[]) {
      if (database === 'passwd') db.batches++;
      const known = database === 'passwd' ? knownUids : knownGids;
      return Promise.resolve(new Set(ids.filter((id) => known.includes(id))));
    },
  };
  return db;
}

describe('dynamic uids', () => {
  it('never hands out a uid or gid the user database knows, nor one a live job holds', async () => {
    const uids = new DynamicUids({ first: 5000, count: 5 }, fakeDatabase([5000, 5002], [5003]));
    const got = [await uids.allocate(), await uids.allocate()];
    assert.deepEqual(got.sort(), [5001, 5004]);
    await assert.rejects(uids.allocate(), /no free dynamic uid: all 5 of 5000..5004/);
    uids.release(5001);
    assert.equal(await uids.allocate(), 5001);
  });

  it('checks candidates in batches ahead of need, and again once a check is older than a minute', async () => {
    let now = 0;
    const db = fakeDatabase([]);
    const uids = new DynamicUids({ first: 10_000, count: 1000 }, db, () => now);
    const first = await uids.allocate();
    assert.equal(first, 10_000);
    for (let i = 0; i < 40; i++) uids.release(await uids.allocate());
    assert.ok(db.batches <= 2, `${db.batches} batches for 41 allocations`);
    now += 61_000;
    const before = db.batches;
    await uids.allocate();
    assert.ok(db.batches > before, 'stale checks are not trusted');
  });

  it('a start that finds no checked uid waits for a small batch; refills ahead of need check big ones', async () => {
    const sizes: number[] = [];
    const db = fakeDatabase([]);
    const knownIds = db.knownIds.bind(db);
    db.knownIds = (database, ids) => {
      if (database === 'passwd') sizes.push(ids.length);
      return knownIds(database, ids);
    };
    const uids = new DynamicUids({ first: 10_000, count: 5000 }, db);
    const got = new Set<number>();
    for (let i = 0; i < 600; i++) got.add(await uids.allocate());
    assert.equal(got.size, 600, 'no uid handed out twice');
    assert.equal(sizes[0], 64, 'the first start waits for 64 lookups, not 512');
    assert.ok(sizes.slice(1).every((n) => n === 512), `later batches: ${sizes.slice(1).join(', ')}`);
    assert.ok(sizes.length <= 3, `${sizes.length} getent batches for 600 starts`);
  });

  it('settled() resolves only once a check in flight is over (a closing worker waits for its getent)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const db = fakeDatabase([]);
    const knownIds = db.knownIds.bind(db);
    db.knownIds = async (database, ids) => {
      await gate;
      return knownIds(database, ids);
    };
    const uids = new DynamicUids({ first: 10_000, count: 100 }, db);
    const allocating = uids.allocate();
    let settled = false;
    const settling = uids.settled().then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'not while getent runs');
    release();
    assert.equal(await allocating, 10_000);
    await settling;
    assert.equal(settled, true);
    await uids.settled(); // nothing in flight: at once
  });

  it('a range must leave out root, nobody and 65535, and stay below 2^32-1', () => {
    assert.throws(() => checkDynamicUidRange('r', { first: 0, count: 10 }), /r.first/);
    assert.throws(() => checkDynamicUidRange('r', { first: 60000, count: 10000 }), /contains 65534/);
    assert.throws(() => checkDynamicUidRange('r', { first: 0xfffffff0, count: 100 }), /r.count/);
    assert.deepEqual(checkDynamicUidRange('r', { first: 0x70000000, count: 65536 }), { first: 0x70000000, count: 65536 });
  });
});
