// Mode detection and the daemon's place in each hierarchy, from statfs types, mountinfo and
// /proc/self/cgroup as they look on real hosts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { checkRootChoice, basePath, ownCgroupBeforeLeaf } from '../../src/cgroup/delegation';
import {
  CGROUP2_SUPER_MAGIC,
  describeHost,
  dirOf,
  modeFromStatfs,
  parseMountinfo,
  TMPFS_MAGIC,
  v1HierarchyOf,
} from '../../src/cgroup/host';
import { parseProcCgroup } from '../../src/cgroup/proc-cgroup';
import { JobworkerError, ValidationError } from '../../src/errors';

const EXT4_MAGIC = 0xef53;

// This very host: a hybrid with memory in a sub-cgroup.
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_PROC = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
4:memory:/process_api/7937
2:cpuacct:/
1:cpu:/
0::/
`;

describe('mode detection (statfs of /sys/fs/cgroup, then of its unified/)', () => {
  it('cgroup2 root: unified; tmpfs with a cgroup2 unified/: hybrid; tmpfs alone: legacy', () => {
    assert.equal(modeFromStatfs(CGROUP2_SUPER_MAGIC, undefined), 'unified');
    assert.equal(modeFromStatfs(TMPFS_MAGIC, CGROUP2_SUPER_MAGIC), 'hybrid');
    assert.equal(modeFromStatfs(TMPFS_MAGIC, undefined), 'legacy');
    assert.equal(modeFromStatfs(TMPFS_MAGIC, TMPFS_MAGIC), 'legacy');
  });

  it('anything else is a clear error', () => {
    assert.throws(() => modeFromStatfs(EXT4_MAGIC, undefined), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'failed-precondition' && /0xef53 is neither cgroup2 nor tmpfs/.test(error.message));
  });
});

describe('describeHost', () => {
  it('hybrid: the unified hierarchy for placement, each v1 controller with the daemon\'s own path in it', () => {
    const host = describeHost('hybrid', parseProcCgroup(HYBRID_PROC), parseMountinfo(HYBRID_MOUNTINFO));
    assert.deepEqual(host.unified, { mountPoint: '/sys/fs/cgroup/unified', mountRoot: '/', ownPath: '/' });
    assert.deepEqual(host.v1.map((h) => h.controllers.join(',')), ['cpu', 'cpuacct', 'memory', 'freezer', 'blkio', 'pids']);
    const memory = v1HierarchyOf(host, 'memory')!;
    assert.equal(memory.ownPath, '/process_api/7937');
    assert.equal(dirOf(memory, '/process_api/7937/jobworker/jobs'), '/sys/fs/cgroup/memory/process_api/7937/jobworker/jobs');
    assert.equal(v1HierarchyOf(host, 'devices'), undefined); // not mounted here
  });

  it('legacy with co-mounted cpu,cpuacct and a container\'s bind-mounted sub-tree', () => {
    const mountinfo = `30 25 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:28 /docker/abc /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
`;
    const proc = '4:freezer:/docker/abc\n3:memory:/docker/abc/svc\n2:cpu,cpuacct:/docker/abc\n';
    const host = describeHost('legacy', parseProcCgroup(proc), parseMountinfo(mountinfo));
    assert.equal(host.unified, undefined);
    const cpu = v1HierarchyOf(host, 'cpuacct')!;
    assert.equal(cpu, v1HierarchyOf(host, 'cpu'));
    assert.deepEqual(cpu.controllers, ['cpu', 'cpuacct']);
    assert.equal(dirOf(cpu, '/docker/abc/jobworker'), '/sys/fs/cgroup/cpu,cpuacct/jobworker');
    assert.equal(dirOf(v1HierarchyOf(host, 'memory')!, '/docker/abc/svc/jobworker'), '/sys/fs/cgroup/memory/svc/jobworker');
    assert.throws(() => dirOf(cpu, '/elsewhere'), /outside what is mounted/);
  });

  it('unified: one hierarchy; no cgroup v2 entry is an error', () => {
    const mountinfo = '25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n';
    const host = describeHost('unified', parseProcCgroup('0::/system.slice/jobworker.service\n'), parseMountinfo(mountinfo));
    assert.deepEqual(host, { mode: 'unified', v1: [], unified: { mountPoint: '/sys/fs/cgroup', mountRoot: '/', ownPath: '/system.slice/jobworker.service' } });
    assert.throws(() => describeHost('unified', parseProcCgroup('1:cpu:/\n'), parseMountinfo(mountinfo)), /no cgroup v2 entry/);
  });

  it('mountinfo escapes', () => {
    const [mount] = parseMountinfo('40 31 0:37 / /mnt/with\\040space rw shared:5 - cgroup2 cgroup2 rw\n');
    assert.equal(mount!.mountPoint, '/mnt/with space');
    assert.equal(mount!.fsType, 'cgroup2');
  });
});

describe('root choice', () => {
  it('default: <own>/jobworker; explicit: as given', () => {
    assert.equal(basePath(checkRootChoice(undefined, undefined), '/system.slice/x.service'), '/system.slice/x.service/jobworker');
    assert.equal(basePath(checkRootChoice('/jobs.slice', undefined), '/anything'), '/jobs.slice');
  });

  it('refuses paths that are not cgroup paths, and names that are not one component', () => {
    for (const root of ['relative', '/sys/../x/', '/', '/a//b']) {
      assert.throws(() => checkRootChoice(root, undefined), (error: unknown) => error instanceof ValidationError && error.field === 'cgroup.root');
    }
    for (const name of ['a/b', '..', '', '.hidden']) {
      assert.throws(() => checkRootChoice(undefined, name), (error: unknown) => error instanceof ValidationError && error.field === 'cgroup.rootName');
    }
  });

  it('a daemon already in its leaf finds the same root again', () => {
    const choice = checkRootChoice(undefined, 'jobworker');
    assert.equal(ownCgroupBeforeLeaf('/svc/jobworker/daemon', choice, false), '/svc');
    assert.equal(ownCgroupBeforeLeaf('/svc', choice, false), '/svc');
    assert.equal(ownCgroupBeforeLeaf('/svc/other/daemon', choice, false), '/svc/other/daemon');
    // The leaf of another root of ours (a jobs/ beside it): the same own cgroup, no nesting.
    assert.equal(ownCgroupBeforeLeaf('/svc/other/daemon', choice, true), '/svc');
    assert.equal(ownCgroupBeforeLeaf('/daemon', choice, true), '/daemon');
    assert.equal(ownCgroupBeforeLeaf('/r/daemon', checkRootChoice('/r', undefined), false), '/r');
    assert.equal(ownCgroupBeforeLeaf('/q/daemon', checkRootChoice('/r', undefined), true), '/q/daemon');
  });
});
