// Where job cgroups live, and how the daemon makes room for them. By default beneath the daemon's
// own cgroup in every hierarchy: <own>/jobworker/jobs/<id>; or beneath a configured root:
// <root>/jobs/<id>. On cgroup v2, controllers reach a cgroup only through its parent's
// cgroup.subtree_control, and a (non-root) cgroup that has processes may not enable any there (the
// no-internal-processes rule): so the daemon first moves itself into a leaf, <base>/daemon.
import * as path from 'node:path';

import { errorCode, JobworkerError, SystemError, ValidationError } from '../errors';
import {
  cgroupFsError,
  listChildren,
  makeCgroupPath,
  readControl,
  removeCgroup,
  type CgroupFs,
  type RootLock,
} from './cgroup-fs';
import { dirOf, type Hierarchy } from './host';
import { RESOURCE_CONTROLLERS } from './job-limits';
import { lockRoot } from './root-lock';
import type { ResourceController } from './types';

export const DEFAULT_ROOT_NAME = 'jobworker';
export const JOBS_DIR = 'jobs';
export const DAEMON_LEAF = 'daemon';

export interface RootChoice {
  /** A cgroup path ("/jobworker.slice/jobs-root"), the same in every hierarchy. */
  explicitRoot?: string;
  /** Name of the cgroup created beneath the daemon's own one, when no explicit root is given. */
  rootName: string;
}

export function checkRootChoice(root: string | undefined, rootName: string | undefined): RootChoice {
  const name = rootName ?? DEFAULT_ROOT_NAME;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
    throw new ValidationError('cgroup.rootName', `must be one path component of letters, digits, ".", "-" or "_", got ${JSON.stringify(name)}`);
  }
  if (root === undefined) return { rootName: name };
  if (!root.startsWith('/') || path.posix.normalize(root) !== root || root === '/' || root.includes('\0')) {
    throw new ValidationError('cgroup.root', `must be a normalized absolute cgroup path such as "/jobworker.slice" (not a /sys/fs/cgroup path), got ${JSON.stringify(root)}`);
  }
  return { explicitRoot: root, rootName: name };
}

/**
 * The daemon's own cgroup as it was before it moved into a leaf. A process that opens a driver
 * again (after a re-exec, for the same root, or for a second root name) finds itself in
 * <own>/<name>/daemon and must not nest new roots inside its leaf. A leaf is known by its name and
 * by its parent: our root name, or a cgroup with a jobs/ directory beside the leaf (`jobsBeside`).
 */
export function ownCgroupBeforeLeaf(ownPath: string, choice: RootChoice, jobsBeside: boolean): string {
  if (path.posix.basename(ownPath) !== DAEMON_LEAF) return ownPath;
  const base = path.posix.dirname(ownPath);
  if (choice.explicitRoot !== undefined) return base === choice.explicitRoot ? base : ownPath;
  if (base === '/') return ownPath;
  return path.posix.basename(base) === choice.rootName || jobsBeside ? path.posix.dirname(base) : ownPath;
}

/** The base cgroup path (jobs go in <base>/jobs) in a hierarchy where the daemon is at ownPath. */
export function basePath(choice: RootChoice, ownPath: string): string {
  return choice.explicitRoot ?? path.posix.join(ownPath, choice.rootName);
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== '');
}

export interface V2Root {
  baseDir: string;
  jobsDir: string;
  /** Controllers enabled for job cgroups. */
  controllers: ReadonlySet<ResourceController>;
  /** Undoes the set-up once no job cgroup is left (tests; a clean uninstall), and lets go of the root. */
  release(): Promise<void>;
  /** Lets go of the root's owner lock; the set-up stays. Idempotent. */
  unlock(): void;
}

/**
 * Makes <base>/jobs with every resource controller the kernel has enabled in it. A controller
 * the kernel lacks altogether is left out (limits needing it are then refused); one the kernel has
 * but that is not delegated to us is an error naming it.
 */
export async function prepareV2Root(fs: CgroupFs, unified: Hierarchy, choice: RootChoice, daemonPid: number): Promise<V2Root> {
  const dir = (cgroupPath: string): string => dirOf(unified, cgroupPath);
  const leafParent = path.posix.dirname(unified.ownPath);
  const jobsBeside = (await listChildren(fs, dir(leafParent))).includes(JOBS_DIR);
  const own = ownCgroupBeforeLeaf(unified.ownPath, choice, jobsBeside);
  const base = basePath(choice, own);
  const jobs = path.posix.join(base, JOBS_DIR);
  const inKernel = words(await readControl(fs, unified.mountPoint, 'cgroup.controllers'));
  const wanted = RESOURCE_CONTROLLERS.filter((controller) => inKernel.includes(controller));

  // Every cgroup from the first one we may touch down to <base>/jobs enables the controllers for
  // the one below it.
  const chain = choice.explicitRoot === undefined ? [own, base, jobs] : [base, jobs];
  const created: string[] = [];
  const enabledByUs = new Map<string, string[]>();
  let moved: { from: string; leaf: string } | undefined;
  const jobsDir = dir(jobs);
  const baseDir = dir(base);
  let lock: RootLock | undefined;

  // Back to how things were, bottom-up: controllers off (the kernel refuses a process in a cgroup
  // that has them enabled for children), the daemon out of its leaf, directories removed.
  const undo = async (removeDirs: string[]): Promise<void> => {
    for (const cgroupPath of [...chain].reverse()) {
      const controllers = enabledByUs.get(dir(cgroupPath));
      if (controllers === undefined) continue;
      const value = controllers.map((controller) => `-${controller}`).join(' ');
      // EBUSY: a sibling still needs them (another driver beneath the same cgroup): theirs to keep.
      await fs.write(path.join(dir(cgroupPath), 'cgroup.subtree_control'), value).catch(() => undefined);
    }
    if (moved !== undefined) {
      try {
        await writeProcs(fs, dir(moved.from), daemonPid);
      } catch (error) {
        if (!(error instanceof SystemError && error.code === 'EBUSY')) throw error;
        throw new JobworkerError(
          'failed-precondition',
          `cannot move the daemon back into ${dir(moved.from)}: another cgroup root beneath it still has controllers enabled; release that one first`,
          { cause: error },
        );
      }
      await removeCgroup(fs, dir(moved.leaf));
    }
    for (const cgroupDir of removeDirs) await removeCgroup(fs, cgroupDir);
  };

  try {
    // Owned before anything in it is touched: another instance's daemon leaf and controllers are not ours.
    created.push(...(await makeCgroupPath(fs, baseDir)));
    lock = lockRoot(fs, baseDir);
    created.push(...(await makeCgroupPath(fs, dir(chain[0]!))));
    const offered = words(await readControl(fs, dir(chain[0]!), 'cgroup.controllers'));
    const notDelegated = wanted.filter((controller) => !offered.includes(controller));
    if (notDelegated.length > 0) {
      throw new JobworkerError(
        'failed-precondition',
        `cgroup v2 controllers not delegated to ${dir(chain[0]!)}: ${notDelegated.join(', ')} ` +
          `(it has: ${offered.join(' ') || 'none'}); run jobworker in a delegated cgroup (systemd: Delegate=yes) ` +
          'or configure a cgroup root that has them',
      );
    }

    // The root cgroup is exempt from the no-internal-processes rule; any other cgroup of ours that
    // must enable controllers cannot keep the daemon.
    if (own !== '/' && chain.includes(own)) {
      const enabled = words(await readControl(fs, dir(own), 'cgroup.subtree_control'));
      if (wanted.some((controller) => !enabled.includes(controller))) {
        const leaf = path.posix.join(base, DAEMON_LEAF);
        created.push(...(await makeCgroupPath(fs, dir(leaf))));
        await writeProcs(fs, dir(leaf), daemonPid);
        moved = { from: own, leaf };
      }
    }

    for (const cgroupPath of chain) {
      const cgroupDir = dir(cgroupPath);
      created.push(...(await makeCgroupPath(fs, cgroupDir)));
      const enabled = words(await readControl(fs, cgroupDir, 'cgroup.subtree_control'));
      const missing = wanted.filter((controller) => !enabled.includes(controller));
      if (missing.length === 0) continue;
      await enableControllers(fs, cgroupDir, missing);
      enabledByUs.set(cgroupDir, missing);
    }
  } catch (error) {
    const leaf = moved === undefined ? undefined : dir(moved.leaf);
    // Only what this instance made, and only if it owned the root: never another instance's.
    if (lock !== undefined) await undo(created.filter((cgroupDir) => cgroupDir !== leaf).reverse()).catch(() => undefined);
    lock?.release();
    throw error;
  }

  const held = lock;
  return {
    baseDir,
    jobsDir,
    controllers: new Set(wanted),
    async release() {
      await removeJobsDir(fs, jobsDir);
      // Controllers we enabled in the root cgroup stay: other users of it may rely on them by now.
      if (own === '/') enabledByUs.delete(dir('/'));
      await undo(choice.explicitRoot === undefined ? [baseDir] : []);
      held.release();
    },
    unlock: () => held.release(),
  };
}

async function writeProcs(fs: CgroupFs, cgroupDir: string, pid: number): Promise<void> {
  const file = path.join(cgroupDir, 'cgroup.procs');
  try {
    await fs.write(file, String(pid));
  } catch (error) {
    throw cgroupFsError(`move pid ${pid} into`, file, error);
  }
}

async function enableControllers(fs: CgroupFs, cgroupDir: string, controllers: string[]): Promise<void> {
  const file = path.join(cgroupDir, 'cgroup.subtree_control');
  const value = controllers.map((controller) => `+${controller}`).join(' ');
  try {
    await fs.write(file, value);
  } catch (error) {
    if (errorCode(error) !== 'EBUSY') throw cgroupFsError(`write "${value}" to`, file, error);
    const pids = words(await readControl(fs, cgroupDir, 'cgroup.procs'));
    throw new JobworkerError(
      'failed-precondition',
      `cannot enable ${controllers.join(', ')} in ${file}: that cgroup holds processes (${pids.slice(0, 8).join(' ') || 'threads'}), ` +
        'and cgroup v2 enables controllers only above leaves; run jobworker in a cgroup of its own (systemd: Delegate=yes) or configure a cgroup root',
      { cause: error },
    );
  }
}

async function removeJobsDir(fs: CgroupFs, jobsDir: string): Promise<void> {
  const left = await listChildren(fs, jobsDir);
  if (left.length > 0) {
    throw new JobworkerError('failed-precondition', `job cgroups remain in ${jobsDir} (${left.slice(0, 5).join(', ')}…): destroy them first`);
  }
  await removeCgroup(fs, jobsDir);
}

export interface PlainRoot {
  jobsDir: string;
  /** Removes <base>/jobs (and <base> unless configured) once no job cgroup is left, and lets go of the root. */
  release(): Promise<void>;
  /** Lets go of the root's owner lock; the directories stay. Idempotent. */
  unlock(): void;
}

/**
 * Makes <base>/jobs in a hierarchy that needs no controller set-up: a v1 hierarchy, or the
 * controller-less unified hierarchy of a hybrid host. The base is locked for this instance first.
 */
export async function preparePlainRoot(fs: CgroupFs, hierarchy: Hierarchy, choice: RootChoice): Promise<PlainRoot> {
  const baseDir = dirOf(hierarchy, basePath(choice, hierarchy.ownPath));
  const jobsDir = path.join(baseDir, JOBS_DIR);
  const created = await makeCgroupPath(fs, baseDir);
  let lock: RootLock;
  try {
    lock = lockRoot(fs, baseDir);
  } catch (error) {
    for (const dir of created.reverse()) await removeCgroup(fs, dir).catch(() => undefined);
    throw error;
  }
  try {
    await makeCgroupPath(fs, jobsDir);
  } catch (error) {
    lock.release();
    throw error;
  }
  return {
    jobsDir,
    async release() {
      await removeJobsDir(fs, jobsDir);
      if (choice.explicitRoot === undefined) await removeCgroup(fs, baseDir);
      lock.release();
    },
    unlock: () => lock.release(),
  };
}
