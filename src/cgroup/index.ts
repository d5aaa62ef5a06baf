// The cgroup layer's entry point: find out what the host has, set up the delegated root, and hand
// back the one driver that fits. The worker codes against CgroupDriver and never learns which.
import { errorCode, JobworkerError } from '../errors';
import { childPath, nodeCgroupFs, type CgroupFs } from './cgroup-fs';
import { checkRootChoice, prepareV2Root, preparePlainRoot, type PlainRoot } from './delegation';
import { discoverHost, v1HierarchyOf, type CgroupHost, type Hierarchy } from './host';
import type { SliceLimitsOf } from './sliced-driver';
import type { CgroupDriver, ResourceController } from './types';
import { V1Driver, type V1Layout } from './v1/driver';
import { V2Driver } from './v2/driver';

export * from './types';
export { sliceNameOf } from './slice-name';
export { MAX_IDLE_SLICES } from './slices';
export { prepareSliceLimits } from './job-limits';
export type { SliceLimitsOf } from './sliced-driver';
export type { RootLock } from './cgroup-fs';
export { validateLimits, type DeviceIoLimit, type ResolvedLimits } from './limits';
export { resolveBlockDevice, resolveIoLimits, deviceId, type BlockDevice } from './devices';
export { discoverHost, type CgroupHost } from './host';
export { RESOURCE_CONTROLLERS } from './job-limits';
export { DEFAULT_ROOT_NAME } from './delegation';
export { useKillSignaller } from './job-processes';
export { nodeCgroupFs, runOpsOneByOne, OpsResults, type CgroupFs, type CgroupOp, type OpsReport } from './cgroup-fs';

export interface CgroupDriverOptions {
  /**
   * A delegated cgroup to put jobs under, as a cgroup path ("/jobworker.slice"), the same in every
   * hierarchy: jobs go in <root>/jobs/<id>. Default: beneath the daemon's own cgroup (rootName).
   */
  root?: string;
  /** The cgroup created beneath the daemon's own one when no root is given. Default "jobworker". */
  rootName?: string;
  /** Where the cgroup filesystems are mounted. Default /sys/fs/cgroup. */
  fsRoot?: string;
  /** Where sysfs is mounted (disk lookups). Default /sys. */
  sysRoot?: string;
  /** Tests: a described host instead of looking at this one. */
  host?: CgroupHost;
  /**
   * The cgroupfs and the ops runner every batch goes through. Default: the real one, one op at a
   * time (the Worker gives the addon's batch runner; tests give a fake kernel).
   */
  fs?: CgroupFs;
  /** The process to move into the daemon leaf on cgroup v2. Default: this one. */
  daemonPid?: number;
  /** Each identity's slice limits (validate them with prepareSliceLimits first). Default: none. */
  sliceLimits?: SliceLimitsOf;
}

export interface OpenedCgroupDriver extends CgroupDriver {
  /** Resource controllers job cgroups get here; limits needing another one are refused. */
  readonly controllers: ReadonlySet<ResourceController>;
  /**
   * Undoes the root set-up once no job cgroup is left: removes the idle slices, <base>/jobs (and
   * <base> unless it was configured), on v2 moves the daemon back out of its leaf, and lets go of
   * the root. For tests and clean shutdowns.
   */
  releaseRoot(): Promise<void>;
  /** Lets go of the root (its owner lock) and leaves every cgroup as it is. Idempotent. */
  close(): void;
}

/** Whether a cgroup has a control file; undefined if that cannot be told. */
async function hasControlFile(fs: CgroupFs, dir: string, file: string): Promise<boolean | undefined> {
  try {
    await fs.read(childPath(dir, file));
    return true;
  } catch (error) {
    return errorCode(error) === 'ENOENT' ? false : undefined;
  }
}

export async function openCgroupDriver(options: CgroupDriverOptions = {}): Promise<OpenedCgroupDriver> {
  const choice = checkRootChoice(options.root, options.rootName);
  const host = options.host ?? discoverHost(options.fsRoot);
  const fs = options.fs ?? nodeCgroupFs;
  const sliceLimits = options.sliceLimits ?? (() => ({}));
  if (host.mode === 'unified') {
    if (host.unified === undefined) throw new JobworkerError('internal', 'unified cgroup host described without its hierarchy');
    const root = await prepareV2Root(fs, host.unified, choice, options.daemonPid ?? process.pid);
    return new V2Driver(fs, root, options.sysRoot, sliceLimits);
  }

  const roots: PlainRoot[] = [];
  const jobsDirs = new Map<Hierarchy, string>();
  const jobsDirIn = async (hierarchy: Hierarchy | undefined): Promise<string | undefined> => {
    if (hierarchy === undefined) return undefined;
    let dir = jobsDirs.get(hierarchy);
    if (dir === undefined) {
      const root = await preparePlainRoot(fs, hierarchy, choice);
      roots.push(root);
      dir = root.jobsDir;
      jobsDirs.set(hierarchy, dir);
    }
    return dir;
  };
  const releaseAll = async (): Promise<void> => {
    const failures: unknown[] = [];
    for (const root of [...roots].reverse()) await root.release().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw failures[0];
  };
  const unlockAll = (): void => {
    for (const root of roots) root.unlock();
  };
  try {
    const legacy = host.mode === 'legacy';
    const layout: V1Layout = { mode: host.mode };
    const set = async (key: Exclude<keyof V1Layout, 'mode' | 'memorySwapAccounting'>, hierarchy: Hierarchy | undefined): Promise<void> => {
      const dir = await jobsDirIn(hierarchy);
      if (dir !== undefined) layout[key] = dir;
    };
    if (!legacy) await set('unified', host.unified);
    await set('cpu', v1HierarchyOf(host, 'cpu'));
    if (legacy) await set('cpuacct', v1HierarchyOf(host, 'cpuacct'));
    await set('memory', v1HierarchyOf(host, 'memory'));
    await set('blkio', v1HierarchyOf(host, 'blkio'));
    await set('pids', v1HierarchyOf(host, 'pids'));
    if (legacy) await set('freezer', v1HierarchyOf(host, 'freezer'));
    if (layout.memory !== undefined) layout.memorySwapAccounting = await hasControlFile(fs, layout.memory, 'memory.memsw.limit_in_bytes');
    return new V1Driver(fs, layout, options.sysRoot, sliceLimits, { release: releaseAll, unlock: unlockAll });
  } catch (error) {
    await releaseAll().catch(() => undefined);
    unlockAll();
    throw error;
  }
}
