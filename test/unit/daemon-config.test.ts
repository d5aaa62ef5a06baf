// The daemon's configuration: defaults < file < environment (< flags, tested end to end).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { applyEnvironment, applyFileConfig, CONFIG_FILE_KEYS, defaultConfig, readConfigFile } from '../../src/daemon/config';
import { checkDynamicUids, hiddenPathsOf, jobPolicyOf } from '../../src/daemon/job-policy';
import type { UserDatabase } from '../../src/worker';

const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: unknown): string {
  const p = path.join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

describe('daemon configuration', () => {
  it('defaults: loopback on 50051, metrics on 9464, /var/lib/jobworker, jobs stopped on shutdown', () => {
    const c = defaultConfig();
    assert.equal(c.listen, '127.0.0.1:50051');
    assert.equal(c.metricsListen, '127.0.0.1:9464');
    assert.equal(c.stateDir, '/var/lib/jobworker');
    assert.deepEqual(c.shutdown, { stopJobs: true, graceMs: 10_000 });
    assert.equal(c.tls, null);
  });

  it('a file overrides the defaults; its relative paths are relative to it', () => {
    const p = file('good.json', {
      listen: '0.0.0.0:6000',
      metricsListen: null,
      stateDir: 'state',
      tls: { ca: 'pki/ca.pem', cert: '/abs/server.pem', key: 'pki/key.pem' },
      defaults: { memoryBytes: 1 << 30, pids: 100 },
      maxStreamsPerIdentity: 64,
      identities: { ci: { user: 'nobody', groups: ['nogroup', 100] }, bob: { user: 1001, group: 1001 } },
      dynamicUids: { first: 3_000_000, count: 1000 },
      scratch: { root: 'scratch', keep: true },
      isolation: { namespaces: { uts: false }, network: 'none', readOnlyRoot: true, optOuts: { network: ['admin', 'writer'] }, mounts: [], hide: ['secrets'] },
      maxUnreadWatchJobs: 500,
    });
    const c = applyFileConfig(defaultConfig(), readConfigFile(p));
    assert.equal(c.listen, '0.0.0.0:6000');
    assert.equal(c.metricsListen, null);
    assert.equal(c.stateDir, path.join(dir, 'state'));
    assert.deepEqual(c.tls, { caPath: path.join(dir, 'pki/ca.pem'), certificatePath: '/abs/server.pem', privateKeyPath: path.join(dir, 'pki/key.pem') });
    assert.deepEqual(c.defaults, { memoryBytes: 1 << 30, pids: 100 });
    assert.equal(c.maxStreamsPerIdentity, 64);
    assert.deepEqual(c.identities, { ci: { user: 'nobody', groups: ['nogroup', 100] }, bob: { user: 1001, group: 1001 } });
    assert.deepEqual(c.dynamicUids, { first: 3_000_000, count: 1000 });
    assert.deepEqual(c.scratch, { root: path.join(dir, 'scratch'), keep: true });
    assert.deepEqual(c.isolation.namespaces, { uts: false });
    assert.equal(c.isolation.network, 'none');
    assert.equal(c.isolation.readOnlyRoot, true);
    assert.deepEqual(c.isolation.optOuts.network, ['admin', 'writer']);
    assert.deepEqual(c.isolation.optOuts.pid, ['admin'], 'opt-outs not given stay admin-only');
    assert.deepEqual(c.isolation.mounts, []);
    assert.deepEqual(c.isolation.hide, [path.join(dir, 'secrets')]);
    assert.equal(c.maxUnreadWatchJobs, 500);
  });

  it('isolation by default: every namespace, the host network, writable root; opt-outs and binds for admins only; dynamic uids from 0x70000000', () => {
    const c = defaultConfig();
    assert.deepEqual(c.isolation.namespaces, {});
    assert.equal(c.isolation.network, 'host');
    assert.equal(c.isolation.readOnlyRoot, false);
    for (const roles of Object.values(c.isolation.optOuts)) assert.deepEqual(roles, ['admin']);
    assert.deepEqual(c.isolation.mounts, ['admin']);
    assert.deepEqual(c.dynamicUids, { first: 0x70000000, count: 65536 });
    assert.deepEqual(c.scratch, { root: null, keep: false });
  });

  it('refuses the old jobUser, saying what replaced it', () => {
    assert.throws(
      () => readConfigFile(file('old.json', { jobUser: { uid: 65534, gid: 65534 } })),
      /old\.json: "jobUser" is no longer supported: .*dynamic uids .*"identities": \{ "<certificate CN>": \{ "user": "nobody" \} \}/,
    );
    assert.throws(() => readConfigFile(file('role.json', { isolation: { mounts: ['root'] } })), /role\.json: isolation\.mounts/);
  });

  it('refuses unknown keys, wrong types and bad JSON, naming the file and the key', () => {
    assert.throws(() => readConfigFile(file('typo.json', { listn: 'x' })), /typo\.json: .*listn.*Extraneous/);
    assert.throws(() => readConfigFile(file('type.json', { defaults: { pids: 'many' } })), /type\.json: defaults\.pids/);
    assert.throws(() => readConfigFile(file('zero.json', { maxUnreadWatchJobs: 0 })), /zero\.json: maxUnreadWatchJobs/);
    assert.throws(() => readConfigFile(file('bad.json', '{ nope')), /bad\.json: not valid JSON/);
    assert.throws(() => readConfigFile(path.join(dir, 'missing.json')), /missing\.json: cannot read it \(ENOENT\)/);
  });

  it('identity limits and per-identity overrides, checked by key and type; the cgroup root name is derived unless set', () => {
    assert.equal(defaultConfig().cgroupRootName, null);
    const p = file('tenancy.json', {
      identityLimits: { memoryBytes: 4 * 2 ** 30, pids: 2048, cpu: 2, maxRunningJobs: 100, logBytes: 10 * 2 ** 30 },
      identityOverrides: { ci: { maxRunningJobs: 500, io: [{ device: '/dev/vda', writeBps: 50_000_000 }] } },
      metricsIdentities: 5,
    });
    const c = applyFileConfig(defaultConfig(), readConfigFile(p));
    assert.deepEqual(c.identityLimits, { memoryBytes: 4 * 2 ** 30, pids: 2048, cpu: 2, maxRunningJobs: 100, logBytes: 10 * 2 ** 30 });
    assert.deepEqual(c.identityOverrides.ci, { maxRunningJobs: 500, io: [{ device: '/dev/vda', writeBps: 50_000_000 }] });
    assert.equal(c.metricsIdentities, 5);
    assert.throws(() => readConfigFile(file('t1.json', { identityLimits: { logbytes: 1 } })), /t1\.json: .*logbytes.*Extraneous/);
    assert.throws(() => readConfigFile(file('t2.json', { identityLimits: { maxRunningJobs: 0 } })), /t2\.json: identityLimits\.maxRunningJobs/);
    assert.throws(() => readConfigFile(file('t3.json', { identityOverrides: { x: { io: [{ readBps: 1 }] } } })), /t3\.json: identityOverrides\.x\.io\[0\]\.device/);
  });

  it('README\'s config example is a valid config that shows every key', () => {
    const readme = readFileSync(path.join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
    const example = /\*\*Config file\*\*[^]*?```json\n([^]*?)```/.exec(readme)?.[1];
    assert.ok(example !== undefined, 'README has a config example');
    const parsed = readConfigFile(file('readme.json', example));
    assert.deepEqual(Object.keys(parsed).sort(), [...CONFIG_FILE_KEYS].sort());
  });

  it('the environment overrides the file', () => {
    const c = applyEnvironment(defaultConfig(), {
      JOBWORKER_LISTEN: '127.0.0.1:7000',
      JOBWORKER_METRICS_LISTEN: 'off',
      JOBWORKER_STATE_DIR: '/srv/jw',
      JOBWORKER_TLS_CA: '/a',
      JOBWORKER_TLS_CERT: '/b',
      JOBWORKER_TLS_KEY: '/c',
      JOBWORKER_LOG_LEVEL: 'debug',
    });
    assert.equal(c.listen, '127.0.0.1:7000');
    assert.equal(c.metricsListen, null);
    assert.equal(c.stateDir, '/srv/jw');
    assert.deepEqual(c.tls, { caPath: '/a', certificatePath: '/b', privateKeyPath: '/c' });
    assert.equal(c.log.level, 'debug');
    assert.throws(() => applyEnvironment(defaultConfig(), { JOBWORKER_TLS_CA: '/a' }), /must be set together/);
    assert.throws(() => applyEnvironment(defaultConfig(), { JOBWORKER_LOG_LEVEL: 'loud' }), /JOBWORKER_LOG_LEVEL/);
  });
});

describe('job policy from the config', () => {
  const db: UserDatabase = {
    user: (key) => Promise.resolve(key === 'nobody' || key === '65534' ? { name: 'nobody', uid: 65534, gid: 65534 } : null),
    group: (key) => Promise.resolve(key === 'users' ? { name: 'users', gid: 100 } : null),
    groupsOf: (_name, gid) => Promise.resolve([gid]),
    knownIds: () => Promise.resolve(new Set<number>()),
  };

  it('maps identities to users looked up now (a name that does not exist stops the daemon), the rest get dynamic uids', async () => {
    const config = { ...defaultConfig(), identities: { ci: { user: 'nobody' }, ops: { user: 4242, group: 'users' } } };
    const policy = await jobPolicyOf(config, db);
    assert.deepEqual(policy.identityUsers.get('ci'), { uid: 65534, gid: 65534, groups: [65534], name: 'nobody', kind: 'mapped' });
    assert.deepEqual(policy.identityUsers.get('ops'), { uid: 4242, gid: 100, groups: [], kind: 'mapped' });
    assert.equal(policy.identityUsers.get('alice'), undefined);
    assert.deepEqual(policy.defaults.namespaces, { pid: true, mount: true, cgroup: true, ipc: true, uts: true });
    await assert.rejects(jobPolicyOf({ ...defaultConfig(), identities: { x: { user: 'ghost' } } }, db), /config: identities\.x\.user: no user named "ghost"/);
  });

  it('hides the config\'s and the TLS files\' directories, unless they are shared with the system', () => {
    const config = { ...defaultConfig(), tls: { caPath: '/etc/jobworker/ca.pem', certificatePath: '/etc/jobworker/server.pem', privateKeyPath: '/etc/ssl/private/key.pem' } };
    const hidden = hiddenPathsOf(config, '/etc/jobworker/config.json');
    assert.deepEqual(hidden.hide.sort(), ['/etc/jobworker', '/etc/ssl/private']);
    const shared = hiddenPathsOf({ ...config, tls: { ...config.tls, caPath: '/etc/ca.pem' } }, null);
    assert.deepEqual(shared.notHidden.map((n) => n.path), ['/etc']);
  });

  it('refuses a dynamic range that overlaps a subordinate id range', () => {
    const subuid = path.join(dir, 'subuid');
    writeFileSync(subuid, 'alice:100000:65536\n');
    const files = { subuid, subgid: path.join(dir, 'none') };
    assert.throws(() => checkDynamicUids({ ...defaultConfig(), dynamicUids: { first: 150000, count: 10 } }, files), /overlaps .*subuid's range of alice \(100000..165535\)/);
    assert.doesNotThrow(() => checkDynamicUids(defaultConfig(), files));
  });
});
