// Which cgroup layout this host has and where the daemon sits in it, found the way runc and crun
// do: statfs(2) of /sys/fs/cgroup decides the mode; /proc/self/mountinfo says where each hierarchy
// is mounted; /proc/self/cgroup says where the daemon is in each.
import { readFileSync, statfsSync } from 'node:fs';
import * as path from 'node:path';

import { errorCode, JobworkerError, systemError } from '../errors';
import { parseProcCgroup, type ProcCgroupEntry } from './proc-cgroup';
import type { CgroupMode } from './types';

export const CGROUP2_SUPER_MAGIC = 0x63677270;
export const TMPFS_MAGIC = 0x01021994;
export const DEFAULT_CGROUP_FS_ROOT = '/sys/fs/cgroup';

/** Controllers a v1 mount can carry (anything else in its options is a mount flag). */
const V1_CONTROLLERS = new Set([
  'cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'blkio',
  'perf_event', 'net_prio', 'hugetlb', 'pids', 'rdma', 'misc',
]);

/**
 * cgroup2 mounted on the root: unified. A tmpfs there holds v1 hierarchies: hybrid when a cgroup2
 * is also mounted at <root>/unified, legacy otherwise.
 */
export function modeFromStatfs(rootType: number, unifiedType: number | undefined, fsRoot = DEFAULT_CGROUP_FS_ROOT): CgroupMode {
  if (rootType === CGROUP2_SUPER_MAGIC) return 'unified';
  if (rootType === TMPFS_MAGIC) return unifiedType === CGROUP2_SUPER_MAGIC ? 'hybrid' : 'legacy';
  throw new JobworkerError(
    'failed-precondition',
    `no cgroup filesystem at ${fsRoot}: statfs type 0x${rootType.toString(16)} is neither cgroup2 nor tmpfs`,
  );
}

export interface MountEntry {
  /** The directory of the filesystem that is mounted (not "/" when a sub-tree is bind-mounted). */
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses /proc/self/mountinfo ("id parent maj:min root mountpoint opts [optional…] - fstype source superopts"). */
export function parseMountinfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 4) continue;
    mounts.push({
      root: unescapeMountField(fields[3]!),
      mountPoint: unescapeMountField(fields[4]!),
      fsType: fields[separator + 1]!,
      superOptions: fields[separator + 3]!.split(','),
    });
  }
  return mounts;
}

/** A mounted hierarchy and the daemon's place in it. */
export interface Hierarchy {
  mountPoint: string;
  /** The cgroup mounted at mountPoint ("/" unless a container bind-mounts a sub-tree). */
  mountRoot: string;
  /** The daemon's own cgroup in this hierarchy, as /proc/self/cgroup names it. */
  ownPath: string;
}

export interface V1Hierarchy extends Hierarchy {
  /** Controllers bound to this hierarchy: ["cpu"], or ["cpu", "cpuacct"] when co-mounted. */
  controllers: string[];
}

export interface CgroupHost {
  mode: CgroupMode;
  /** The cgroup2 hierarchy: all of it on unified hosts, placement/kill/events only on hybrid ones. */
  unified?: Hierarchy;
  v1: V1Hierarchy[];
}

/** The directory of `cgroupPath` (a path as /proc/self/cgroup writes it) in a mounted hierarchy. */
export function dirOf(hierarchy: Pick<Hierarchy, 'mountPoint' | 'mountRoot'>, cgroupPath: string): string {
  const root = hierarchy.mountRoot;
  if (root !== '/' && cgroupPath !== root && !cgroupPath.startsWith(`${root}/`)) {
    throw new JobworkerError(
      'failed-precondition',
      `cgroup ${cgroupPath} is outside what is mounted at ${hierarchy.mountPoint} (${root})`,
    );
  }
  return path.join(hierarchy.mountPoint, root === '/' ? cgroupPath : cgroupPath.slice(root.length));
}

export function v1HierarchyOf(host: CgroupHost, controller: string): V1Hierarchy | undefined {
  return host.v1.find((hierarchy) => hierarchy.controllers.includes(controller));
}

/** Puts the facts together; pure, so every host layout can be unit-tested. */
export function describeHost(
  mode: CgroupMode,
  procCgroup: readonly ProcCgroupEntry[],
  mounts: readonly MountEntry[],
  fsRoot = DEFAULT_CGROUP_FS_ROOT,
): CgroupHost {
  const host: CgroupHost = { mode, v1: [] };
  if (mode !== 'legacy') {
    const mountPoint = mode === 'unified' ? fsRoot : path.join(fsRoot, 'unified');
    const mount = mounts.find((m) => m.fsType === 'cgroup2' && m.mountPoint === mountPoint);
    const own = procCgroup.find((entry) => entry.hierarchyId === 0 && entry.controllers.length === 0);
    if (own === undefined) {
      throw new JobworkerError('failed-precondition', 'this process has no cgroup v2 entry ("0::…") in /proc/self/cgroup');
    }
    host.unified = { mountPoint, mountRoot: mount?.root ?? '/', ownPath: own.path };
  }
  if (mode === 'unified') return host;
  for (const mount of mounts) {
    if (mount.fsType !== 'cgroup' || !mount.mountPoint.startsWith(`${fsRoot}/`)) continue;
    const controllers = mount.superOptions.filter((option) => V1_CONTROLLERS.has(option));
    if (controllers.length === 0) continue; // name=systemd and the like
    if (host.v1.some((known) => known.controllers.includes(controllers[0]!))) continue; // a second mount of it
    const own = procCgroup.find((entry) => entry.hierarchyId !== 0 && entry.controllers.includes(controllers[0]!));
    if (own === undefined) continue;
    host.v1.push({ controllers, mountPoint: mount.mountPoint, mountRoot: mount.root, ownPath: own.path });
  }
  return host;
}

function statfsType(target: string): number | undefined {
  try {
    return statfsSync(target).type;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw systemError('statfs', target, error);
  }
}

/** Looks at this host. */
export function discoverHost(fsRoot = DEFAULT_CGROUP_FS_ROOT): CgroupHost {
  const rootType = statfsType(fsRoot);
  if (rootType === undefined) throw new JobworkerError('failed-precondition', `${fsRoot} does not exist: no cgroup filesystem mounted`);
  const mode = modeFromStatfs(rootType, rootType === CGROUP2_SUPER_MAGIC ? undefined : statfsType(path.join(fsRoot, 'unified')), fsRoot);
  const procCgroup = parseProcCgroup(readProcFile('/proc/self/cgroup'));
  const mounts = parseMountinfo(readProcFile('/proc/self/mountinfo'));
  return describeHost(mode, procCgroup, mounts, fsRoot);
}

function readProcFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw systemError('read', file, error);
  }
}
