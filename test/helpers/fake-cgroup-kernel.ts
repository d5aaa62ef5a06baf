// A fake cgroup filesystem over a temporary directory tree, for unit tests of the drivers on hosts
// we cannot run here (pure cgroup v2 with controllers, legacy v1). It behaves like the kernel where
// the drivers depend on it: mkdir fills a cgroup with the control files of the controllers it
// gets, control files cannot be created by writing, cgroup.subtree_control obeys the
// no-internal-processes rule, cgroup.procs moves a pid, rmdir refuses a busy cgroup. Every write is
// recorded. Tests read the results back from the tree, or from `writes`.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { runOpsOneByOne, type CgroupFs, type CgroupOp, type OpsReport } from '../../src/cgroup/cgroup-fs';
import type { CgroupHost, V1Hierarchy } from '../../src/cgroup/host';

function errnoError(code: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${file}`), { code });
}

async function exists(file: string): Promise<boolean> {
  return fsp.access(file).then(() => true, () => false);
}

const V2_CORE: Record<string, string> = {
  'cgroup.procs': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.subtree_control': '',
  'cgroup.kill': '',
  'cgroup.freeze': '0\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
};

const V2_CONTROLLER_FILES: Record<string, Record<string, string>> = {
  cpu: {
    'cpu.max': 'max 100000\n',
    'cpu.weight': '100\n',
    'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n',
  },
  memory: {
    'memory.max': 'max\n',
    'memory.high': 'max\n',
    'memory.swap.max': 'max\n',
    'memory.oom.group': '0\n',
    'memory.current': '0\n',
    'memory.peak': '0\n',
    'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
  },
  io: { 'io.max': '', 'io.stat': '' },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
};

const V1_CORE: Record<string, string> = { 'cgroup.procs': '', tasks: '' };

const V1_CONTROLLER_FILES: Record<string, Record<string, string>> = {
  cpu: {
    'cpu.cfs_period_us': '100000\n',
    'cpu.cfs_quota_us': '-1\n',
    'cpu.shares': '1024\n',
    'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n',
  },
  cpuacct: { 'cpuacct.usage': '0\n', 'cpuacct.usage_user': '0\n', 'cpuacct.usage_sys': '0\n' },
  memory: {
    'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.memsw.limit_in_bytes': '9223372036854771712\n',
    'memory.soft_limit_in_bytes': '9223372036854771712\n',
    'memory.swappiness': '60\n',
    'memory.use_hierarchy': '0\n',
    'memory.usage_in_bytes': '0\n',
    'memory.max_usage_in_bytes': '0\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
  },
  blkio: {
    'blkio.throttle.read_bps_device': '',
    'blkio.throttle.write_bps_device': '',
    'blkio.throttle.read_iops_device': '',
    'blkio.throttle.write_iops_device': '',
    'blkio.throttle.io_service_bytes': 'Total 0\n',
    'blkio.throttle.io_serviced': 'Total 0\n',
  },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
  freezer: { 'freezer.state': 'THAWED\n' },
};

export interface FakeHierarchy {
  mountPoint: string;
  /** 2 for cgroup2; 1 for a v1 hierarchy with `controllers` bound. */
  version: 1 | 2;
  /** v2: controllers the kernel has (root cgroup.controllers); v1: controllers bound. */
  controllers: string[];
}

export class FakeCgroupKernel implements CgroupFs {
  readonly writes: { file: string; value: string }[] = [];
  /** Control file name → errno a write to it fails with. */
  readonly failWrites = new Map<string, string>();
  /** v1 hierarchies: leave out memory.memsw.* (no swap accounting). */
  noSwapAccounting = false;

  constructor(readonly hierarchies: FakeHierarchy[]) {}

  /** Creates the mounted root cgroups, with `procs` in each. */
  async boot(procs: number[]): Promise<void> {
    for (const hierarchy of this.hierarchies) {
      await fsp.mkdir(hierarchy.mountPoint, { recursive: true });
      await this.populate(hierarchy.mountPoint, hierarchy, true);
      await fsp.writeFile(path.join(hierarchy.mountPoint, 'cgroup.procs'), procs.map((pid) => `${pid}\n`).join(''));
    }
  }

  /** Like `mkdir -p` by an administrator, with `procs` placed in the last one. */
  async makeCgroupTree(dir: string, procs: number[] = []): Promise<void> {
    const hierarchy = this.hierarchyOf(dir);
    const parts = path.relative(hierarchy.mountPoint, dir).split(path.sep);
    let current = hierarchy.mountPoint;
    for (const part of parts) {
      current = path.join(current, part);
      if (!(await exists(current))) await this.mkdir(current);
    }
    for (const pid of procs) await this.write(path.join(dir, 'cgroup.procs'), String(pid));
  }

  async setControllers(dir: string, controllers: string[]): Promise<void> {
    await fsp.writeFile(path.join(dir, 'cgroup.controllers'), `${controllers.join(' ')}\n`);
  }

  async mkdir(dir: string): Promise<void> {
    await fsp.mkdir(dir);
    await this.populate(dir, this.hierarchyOf(dir), false);
  }

  async rmdir(dir: string): Promise<void> {
    if (!(await exists(dir))) throw errnoError('ENOENT', dir);
    if ((await this.children(dir)).length > 0) throw errnoError('EBUSY', dir);
    if ((await fsp.readFile(path.join(dir, 'cgroup.procs'), 'utf8')).trim() !== '') throw errnoError('EBUSY', dir);
    await fsp.rm(dir, { recursive: true });
  }

  async read(file: string): Promise<string> {
    return fsp.readFile(file, 'utf8');
  }

  async write(file: string, value: string): Promise<void> {
    if (!(await exists(file))) throw errnoError('ENOENT', file);
    const failure = this.failWrites.get(path.basename(file));
    if (failure !== undefined) throw errnoError(failure, file);
    this.writes.push({ file, value });
    const dir = path.dirname(file);
    const hierarchy = this.hierarchyOf(dir);
    switch (path.basename(file)) {
      case 'cgroup.subtree_control':
        return this.writeSubtreeControl(dir, hierarchy, value);
      case 'cgroup.procs':
        return this.movePid(dir, hierarchy, Number(value));
      case 'io.max': {
        // One line per device; a new line for a device replaces the old one.
        const device = value.split(' ')[0]!;
        const lines = (await this.read(file)).split('\n').filter((line) => line !== '' && !line.startsWith(`${device} `));
        return fsp.writeFile(file, [...lines, value].map((line) => `${line}\n`).join(''));
      }
      default:
        return fsp.writeFile(file, `${value}\n`);
    }
  }

  /** The fake's ops runner: each op through the calls above, as the real runner would do them. */
  run(ops: readonly CgroupOp[]): Promise<OpsReport> {
    return runOpsOneByOne(this, ops);
  }

  async children(dir: string): Promise<string[]> {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  }

  /** Reads a control file of a cgroup, trimmed. */
  async control(dir: string, file: string): Promise<string> {
    return (await this.read(path.join(dir, file))).trim();
  }

  /** Sets a statistics file as the kernel would. */
  async setStat(dir: string, file: string, content: string): Promise<void> {
    await fsp.writeFile(path.join(dir, file), content);
  }

  private hierarchyOf(dir: string): FakeHierarchy {
    const hierarchy = this.hierarchies.find((h) => dir === h.mountPoint || dir.startsWith(`${h.mountPoint}/`));
    if (hierarchy === undefined) throw new Error(`fake kernel: ${dir} is in no hierarchy`);
    return hierarchy;
  }

  private async populate(dir: string, hierarchy: FakeHierarchy, isRoot: boolean): Promise<void> {
    const files: Record<string, string> = {};
    if (hierarchy.version === 1) {
      Object.assign(files, V1_CORE);
      for (const controller of hierarchy.controllers) Object.assign(files, V1_CONTROLLER_FILES[controller] ?? {});
      if (this.noSwapAccounting) for (const name of Object.keys(files)) if (name.includes('memsw')) delete files[name];
    } else {
      Object.assign(files, V2_CORE);
      const controllers = isRoot
        ? hierarchy.controllers
        : (await this.read(path.join(path.dirname(dir), 'cgroup.subtree_control'))).split(/\s+/).filter(Boolean);
      files['cgroup.controllers'] = `${controllers.join(' ')}\n`;
      if (!isRoot) for (const controller of controllers) Object.assign(files, V2_CONTROLLER_FILES[controller] ?? {});
    }
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(dir, name);
      if (!(await exists(file))) await fsp.writeFile(file, content);
    }
  }

  private async writeSubtreeControl(dir: string, hierarchy: FakeHierarchy, value: string): Promise<void> {
    const offered = (await this.control(dir, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
    const enabled = new Set((await this.control(dir, 'cgroup.subtree_control')).split(/\s+/).filter(Boolean));
    const isRoot = dir === hierarchy.mountPoint;
    for (const token of value.split(/\s+/).filter(Boolean)) {
      const controller = token.slice(1);
      if (token.startsWith('+')) {
        if (!offered.includes(controller)) throw errnoError('ENOENT', path.join(dir, 'cgroup.subtree_control'));
        if (!isRoot && (await this.control(dir, 'cgroup.procs')) !== '') throw errnoError('EBUSY', dir);
        enabled.add(controller);
      } else if (token.startsWith('-')) {
        for (const child of await this.children(dir)) {
          if ((await this.control(path.join(dir, child), 'cgroup.subtree_control')).split(/\s+/).includes(controller)) {
            throw errnoError('EBUSY', dir);
          }
        }
        enabled.delete(controller);
      }
    }
    const list = [...enabled];
    await fsp.writeFile(path.join(dir, 'cgroup.subtree_control'), `${list.join(' ')}\n`);
    // Children get (or lose) the controllers at once.
    for (const child of await this.children(dir)) {
      const childDir = path.join(dir, child);
      await this.setControllers(childDir, list);
      for (const controller of list) {
        for (const [name, content] of Object.entries(V2_CONTROLLER_FILES[controller] ?? {})) {
          if (!(await exists(path.join(childDir, name)))) await fsp.writeFile(path.join(childDir, name), content);
        }
      }
    }
  }

  private async movePid(dir: string, hierarchy: FakeHierarchy, pid: number): Promise<void> {
    if (hierarchy.version === 2 && dir !== hierarchy.mountPoint && (await this.control(dir, 'cgroup.subtree_control')) !== '') {
      throw errnoError('EBUSY', dir);
    }
    const walk = async (current: string): Promise<void> => {
      const procsFile = path.join(current, 'cgroup.procs');
      const pids = (await this.read(procsFile)).split('\n').filter(Boolean).map(Number).filter((p) => p !== pid);
      if (current === dir) pids.push(pid);
      await fsp.writeFile(procsFile, pids.map((p) => `${p}\n`).join(''));
      for (const child of await this.children(current)) await walk(path.join(current, child));
    };
    await walk(hierarchy.mountPoint);
  }
}

/** The v1 hierarchies of the fake hosts: cpu and cpuacct co-mounted, freezer for legacy kills. */
export const FAKE_V1_MOUNTS: [string, string[]][] = [
  ['cpu,cpuacct', ['cpu', 'cpuacct']],
  ['memory', ['memory']],
  ['blkio', ['blkio']],
  ['pids', ['pids']],
  ['freezer', ['freezer']],
];

/**
 * A legacy (v1 only) or hybrid (v1 plus a controller-less cgroup2) host under `dir`, booted with
 * pid 1 in every root; `memoryOwn` is this process's own memory cgroup (created). `at(mount, p)` is
 * the path of cgroup `p` in the hierarchy mounted at `dir/mount`.
 */
export async function bootFakeV1Host(
  dir: string,
  mode: 'legacy' | 'hybrid',
  memoryOwn = '/',
): Promise<{ kernel: FakeCgroupKernel; host: CgroupHost; at: (mountName: string, p: string) => string }> {
  const at = (mountName: string, p: string): string => path.join(dir, mountName, p);
  const hierarchies: FakeHierarchy[] = FAKE_V1_MOUNTS.map(([name, controllers]) => ({ mountPoint: path.join(dir, name), version: 1, controllers }));
  if (mode === 'hybrid') hierarchies.push({ mountPoint: path.join(dir, 'unified'), version: 2, controllers: [] });
  const kernel = new FakeCgroupKernel(hierarchies);
  await kernel.boot([1]);
  const v1: V1Hierarchy[] = FAKE_V1_MOUNTS.map(([name, controllers]) => ({
    controllers,
    mountPoint: path.join(dir, name),
    mountRoot: '/',
    ownPath: name === 'memory' ? memoryOwn : '/',
  }));
  if (memoryOwn !== '/') await kernel.makeCgroupTree(at('memory', memoryOwn));
  const host: CgroupHost = { mode, v1 };
  if (mode === 'hybrid') host.unified = { mountPoint: path.join(dir, 'unified'), mountRoot: '/', ownPath: '/' };
  return { kernel, host, at };
}
