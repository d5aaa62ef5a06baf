// One job's cgroup(s), whatever the host: the drivers build it from a JobProcesses (how to see and
// kill the processes), the directories to remove and the files a spawn must open.
import { closeSync, constants, openSync } from 'node:fs';

import { errorCode, JobworkerError, systemError } from '../errors';
import {
  cgroupOpError,
  childPath,
  parseFlatKeyed,
  prefetchedFs,
  prefetchReads,
  removeCgroup,
  runCgroupOps,
  type CgroupFs,
  type CgroupOp,
  type CgroupOpsResult,
  type ControlWrite,
} from './cgroup-fs';
import { signalPid, type JobProcesses } from './job-processes';
import type { CgroupStats, JobCgroup, SettledCgroup, SpawnPlacement, SpawnPlacementPaths } from './types';

/** How long destroy() waits for killed processes to go (only a task stuck in the kernel takes long). */
export const DESTROY_WAIT_MS = 10_000;

export interface JobCgroupParts {
  id: string;
  /** The directory that holds the job's processes for placement, events and kill. */
  path: string;
  fs: CgroupFs;
  processes: JobProcesses;
  /** cgroup2 directory the process is born into (absent on legacy hosts). */
  bornInto?: string;
  /** v1 directories the child joins before exec (their cgroup.procs). */
  joins: string[];
  /** Every directory of the job, in the order they are removed. */
  dirs: string[];
  /** cgroup2 cgroup.events of the job (absent on legacy hosts: the freezer has none). */
  eventsFile?: string;
  /** Every control file readStats() reads, so that they can be read in one batch first. */
  statFiles: string[];
  /** Builds the stats from the control files, read through `fs`. */
  readStats(fs: CgroupFs): Promise<CgroupStats>;
}

/** One directory of a job's cgroup and the limits written into it. */
export interface JobDirPlan {
  dir: string;
  writes: readonly ControlWrite[];
}

/** The ops that create a job's directories and write their limits, in order. */
export function createOpsOf(plan: readonly JobDirPlan[]): CgroupOp[] {
  const ops: CgroupOp[] = [];
  for (const { dir, writes } of plan) {
    ops.push({ op: 'mkdir', path: dir });
    for (const write of writes) {
      ops.push({ op: 'write', path: childPath(dir, write.file), value: write.value, optional: write.optional === true });
    }
  }
  return ops;
}

/** The error to report when the create ops of job `id` stopped at `index` with `cause`. */
export function creationError(id: string, ops: readonly CgroupOp[], index: number, cause: unknown): Error {
  const failed = ops[index];
  if (failed === undefined) return new JobworkerError('internal', `job ${id}: cgroup creation failed: ${String(cause)}`);
  const error = cgroupOpError(failed, cause);
  if (failed.op === 'mkdir' && error.kind === 'already-exists') {
    return new JobworkerError('already-exists', `a cgroup for job ${id} already exists at ${failed.path}`, { cause: error });
  }
  return error;
}

/** Runs create ops in one batch; on a failure removes what they created and throws why. */
export async function runCreateOps(fs: CgroupFs, id: string, ops: readonly CgroupOp[]): Promise<void> {
  const result = await runCgroupOps(fs, ops);
  if (result.error === undefined) return;
  const undo: CgroupOp[] = ops
    .slice(0, result.completed)
    .filter((op) => op.op === 'mkdir')
    .reverse()
    .map((op) => ({ op: 'rmdir', path: op.path, optional: true }));
  await runCgroupOps(fs, undo); // best effort: the failure below is the one to report
  throw creationError(id, ops, result.completed, result.error);
}

export class CgroupOfJob implements JobCgroup {
  readonly id: string;
  readonly path: string;
  #parts: JobCgroupParts;
  #destroying: Promise<void> | undefined;

  constructor(parts: JobCgroupParts) {
    this.id = parts.id;
    this.path = parts.path;
    this.#parts = parts;
  }

  openPlacement(): { placement: SpawnPlacement; release(): void } {
    const opened: number[] = [];
    const release = (): void => {
      for (const fd of opened.splice(0)) closeSync(fd);
    };
    const open = (file: string, flags: number): number => {
      try {
        const fd = openSync(file, flags);
        opened.push(fd);
        return fd;
      } catch (error) {
        release();
        throw systemError('open', file, error, 'internal');
      }
    };
    const { cgroupPath, joinProcsPaths } = this.placementPaths();
    const cgroupFd = cgroupPath === undefined ? undefined : open(cgroupPath, constants.O_RDONLY | constants.O_DIRECTORY);
    const joinProcsFds = joinProcsPaths.map((file) => open(file, constants.O_WRONLY));
    const placement: SpawnPlacement = { joinProcsFds };
    if (cgroupFd !== undefined) placement.cgroupFd = cgroupFd;
    return { placement, release };
  }

  placementPaths(): SpawnPlacementPaths {
    const { bornInto, joins } = this.#parts;
    const paths: SpawnPlacementPaths = { joinProcsPaths: joins.map((dir) => childPath(dir, 'cgroup.procs')) };
    if (bornInto !== undefined) paths.cgroupPath = bornInto;
    return paths;
  }

  async stats(): Promise<CgroupStats> {
    const { fs, statFiles, readStats } = this.#parts;
    return readStats(await prefetchReads(fs, statFiles));
  }

  async settle(): Promise<SettledCgroup> {
    const ops = this.settleOps();
    if (ops === undefined) {
      // Legacy hosts: the freezer has no cgroup.events, so no single batch either.
      return { empty: !(await this.#parts.processes.populated()), stats: await this.stats(), removed: false };
    }
    return this.settled(await runCgroupOps(this.#parts.fs, ops));
  }

  settleOps(): CgroupOp[] | undefined {
    const { statFiles, eventsFile, dirs } = this.#parts;
    if (eventsFile === undefined) return undefined;
    // Whether a process is left and the stats first, then the removal, which fails with EBUSY (and
    // stops there) if a process is left.
    return [
      { op: 'read', path: eventsFile, optional: true },
      ...statFiles.map((file): CgroupOp => ({ op: 'read', path: file, optional: true })),
      ...dirs.map((dir): CgroupOp => ({ op: 'rmdir', path: dir, optional: true })),
    ];
  }

  async settled(result: CgroupOpsResult): Promise<SettledCgroup> {
    const { fs, statFiles, readStats } = this.#parts;
    // A failed read is an error; a failed rmdir (EBUSY: a process is left) only means "not removed".
    const failed = result.error === undefined ? undefined : this.settleOps()?.[result.completed];
    if (failed?.op === 'read') throw cgroupOpError(failed, result.error);
    const events = result.reads[0];
    if (events === null || events === undefined) throw new JobworkerError('not-found', `job ${this.id}: its cgroup ${this.path} is gone`);
    const texts = new Map(statFiles.map((file, i) => [file, result.reads[i + 1] ?? null]));
    const removed = result.error === undefined;
    return { empty: parseFlatKeyed(events).get('populated') === 0, stats: await readStats(prefetchedFs(fs, texts)), removed };
  }

  async signalAll(signal: NodeJS.Signals): Promise<number> {
    const { processes } = this.#parts;
    // Frozen processes cannot exit, so no pid we read can be reaped and reused before we signal it.
    // The signal is delivered when they thaw.
    await processes.freeze();
    try {
      let signalled = 0;
      for (const pid of await processes.list()) if (signalPid(pid, signal)) signalled++;
      return signalled;
    } finally {
      await processes.thaw();
    }
  }

  kill(): Promise<void> {
    return this.#parts.processes.killAll();
  }

  waitEmpty(timeoutMs: number): Promise<boolean> {
    return this.#parts.processes.waitEmpty(timeoutMs);
  }

  destroy(): Promise<void> {
    // Concurrent callers share one removal; after a failure, a later call tries again.
    this.#destroying ??= this.#destroy().finally(() => {
      this.#destroying = undefined;
    });
    return this.#destroying;
  }

  async #destroy(): Promise<void> {
    const { processes, fs, dirs } = this.#parts;
    // Usually the job is over and its cgroups are empty: remove them in one batch. A process left
    // (EBUSY) takes the careful path below; any other failure is reported as it is.
    const removal = await runCgroupOps(
      fs,
      dirs.map((dir) => ({ op: 'rmdir', path: dir, optional: true })),
    );
    if (removal.error === undefined) return;
    if (errorCode(removal.error) !== 'EBUSY') throw cgroupOpError({ op: 'rmdir', path: dirs[removal.completed]! }, removal.error);
    if (await processes.populated()) await processes.killAll();
    if (!(await processes.waitEmpty(DESTROY_WAIT_MS))) {
      throw new JobworkerError(
        'unavailable',
        `job ${this.id}: processes still in ${this.path} ${DESTROY_WAIT_MS / 1000} s after kill (stuck in uninterruptible sleep?); not removed`,
      );
    }
    for (const dir of dirs.slice(removal.completed)) await removeCgroup(fs, dir);
  }
}
