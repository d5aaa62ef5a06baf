// One job's cgroup(s), whatever the host. The drivers describe it (JobCgroupParts: its directories,
// the limits written into them, how to see and kill its processes, the files its stats come from);
// from that come the plan (pure data: ops to create and to settle, read back by file) and the live
// handle (stats, signal, kill, wait, destroy).
import { errorCode, JobworkerError } from '../errors';
import {
  cgroupOpError,
  childPath,
  OpsResults,
  parseFlatKeyed,
  readFiles,
  removeCgroup,
  type CgroupFs,
  type CgroupOp,
  type ControlFiles,
  type ControlWrite,
  type OpsReport,
} from './cgroup-fs';
import { signalListed, type JobProcesses } from './job-processes';
import type { SliceLease } from './slices';
import type { CgroupStats, CreateOutcome, JobCgroup, JobCgroupName, JobCgroupPlan, Limits, SettledCgroup, SpawnPlacementPaths } from './types';

/** How long destroy() waits for killed processes to go (only a task stuck in the kernel takes long). */
export const DESTROY_WAIT_MS = 10_000;

/** One directory of a job's cgroup and the limits written into it. */
export interface JobDirPlan {
  dir: string;
  writes: readonly ControlWrite[];
}

/**
 * The file that says whether a process is left: cgroup.events ("populated 0|1") where there is a
 * cgroup2 directory; on legacy hosts the freezer's cgroup.procs (empty or not), v1 having no events.
 */
export type PopulatedFile = { kind: 'events'; file: string } | { kind: 'procs'; file: string };

export interface JobCgroupParts {
  id: string;
  /** The directory that holds the job's processes for placement, events and kill. */
  path: string;
  fs: CgroupFs;
  processes: JobProcesses;
  /** Every directory of the job with its limits, in the order they are created. */
  dirs: readonly JobDirPlan[];
  placement: SpawnPlacementPaths;
  populated: PopulatedFile;
  /** Every control file readStats() reads (made when asked: a running job would keep ~1 KiB of paths). */
  statFiles(): string[];
  /** Builds the stats from the control files, read in one batch. Pure. */
  readStats(files: ControlFiles): CgroupStats;
}

/** The ops that create a job's directories and write their limits (all but those afterStart), in order. */
export function createOpsOf(plan: readonly JobDirPlan[]): CgroupOp[] {
  const ops: CgroupOp[] = [];
  for (const { dir, writes } of plan) {
    ops.push({ op: 'mkdir', path: dir });
    for (const write of writes) {
      if (write.afterStart !== true) ops.push(writeOp(dir, write));
    }
  }
  return ops;
}

/** The writes made once the job's process has exec'd (ControlWrite.afterStart), in order. */
export function startedOpsOf(plan: readonly JobDirPlan[]): CgroupOp[] {
  return plan.flatMap(({ dir, writes }) => writes.filter((write) => write.afterStart === true).map((write) => writeOp(dir, write)));
}

function writeOp(dir: string, write: ControlWrite): CgroupOp {
  return { op: 'write', path: childPath(dir, write.file), value: write.value, optional: write.optional === true };
}

/** Whether a process is left, from the text of the PopulatedFile. */
function isPopulated(populated: PopulatedFile, text: string): boolean {
  return populated.kind === 'events' ? parseFlatKeyed(text).get('populated') === 1 : text.trim() !== '';
}

/**
 * What a job's cgroup needs once it exists: the parts without the limits' writes (the directories by
 * path only). Every running job keeps this, so it holds nothing the job no longer needs.
 */
interface KeptParts {
  id: string;
  path: string;
  fs: CgroupFs;
  processes: JobProcesses;
  /** In the order they are created. */
  dirs: readonly string[];
  populated: PopulatedFile;
  statFiles(): string[];
  readStats(files: ControlFiles): CgroupStats;
}

function keptParts(parts: JobCgroupParts): KeptParts {
  return {
    id: parts.id,
    path: parts.path,
    fs: parts.fs,
    processes: parts.processes,
    dirs: parts.dirs.map(({ dir }) => dir),
    populated: parts.populated,
    statFiles: parts.statFiles,
    readStats: parts.readStats,
  };
}

export class CgroupPlan implements JobCgroupPlan {
  readonly id: string;
  readonly name: JobCgroupName;
  readonly limits: Limits;
  readonly placement: SpawnPlacementPaths;
  readonly cgroup: CgroupOfJob;
  #parts: KeptParts;
  #slice: SliceLease;
  #createOps: readonly CgroupOp[];
  readonly startedOps: readonly CgroupOp[];

  constructor(parts: JobCgroupParts, limits: Limits, slice: SliceLease) {
    this.id = parts.id;
    this.name = { id: parts.id, slice: slice.name };
    this.limits = limits;
    this.#parts = keptParts(parts);
    this.#slice = slice;
    this.placement = parts.placement;
    // The slice first (when this job makes it): its directories must exist before the job's.
    this.#createOps = [...slice.createOps, ...createOpsOf(parts.dirs)];
    this.startedOps = startedOpsOf(parts.dirs);
    this.cgroup = new CgroupOfJob(this.#parts);
  }

  get createOps(): readonly CgroupOp[] {
    return this.#createOps;
  }

  /**
   * Whether a process is left and the stats first, then the removal, which fails with EBUSY (and
   * stops there) if a process is left. Reads are optional: a missing file is told apart from a failed
   * read by settled(). Made when asked (at the spawn, and again in settled(): the same ops, as the
   * results are read by name), not kept by every running job.
   */
  get settleOps(): readonly CgroupOp[] {
    const { populated, dirs } = this.#parts;
    return [
      { op: 'read', path: populated.file, optional: true },
      ...this.#parts.statFiles().map((file): CgroupOp => ({ op: 'read', path: file, optional: true })),
      ...[...dirs].reverse().map((dir): CgroupOp => ({ op: 'rmdir', path: dir, optional: true })),
    ];
  }

  creationError(report: OpsReport): Error {
    const failed = new OpsResults(this.createOps, report).failed;
    if (failed === undefined) return new JobworkerError('internal', `job ${this.id}: cgroup creation reported a failure without an error`);
    const error = cgroupOpError(failed.op, failed.error);
    if (failed.op.op === 'mkdir' && error.kind === 'already-exists' && failed.op.path.endsWith(`/${this.id}`)) {
      return new JobworkerError('already-exists', `a cgroup for job ${this.id} already exists at ${failed.op.path}`, { cause: error });
    }
    return error;
  }

  createOpsRan(outcome: CreateOutcome): void {
    this.#slice.createOpsRan(outcome);
    // Kept by every running job otherwise (paths and limit values, ~2 KiB on a hybrid host), and
    // only creationError() reads them, before this.
    if (outcome === 'created') this.#createOps = [];
  }

  release(): Promise<void> {
    return this.#slice.leave();
  }

  settled(report: OpsReport): SettledCgroup {
    const results = new OpsResults(this.settleOps, report);
    // A failed read is an error; a failed rmdir (EBUSY: a process is left) only means "not removed".
    if (results.failed !== undefined && results.failed.op.op === 'read') throw cgroupOpError(results.failed.op, results.failed.error);
    const { populated } = this.#parts;
    const text = results.text(populated.file);
    if (text === null || text === undefined) throw new JobworkerError('not-found', `job ${this.id}: its cgroup ${this.#parts.path} is gone`);
    // Removed means empty: rmdir refuses a cgroup with a process in it. (The read said populated:
    // its last processes were dying; the stats are from just before.)
    const removed = results.failed === undefined;
    return { empty: removed || !isPopulated(populated, text), stats: this.#parts.readStats(results.files()), removed };
  }
}

/** The cgroup of an existing job (or slice), from its driver's parts. */
export function cgroupOfParts(parts: JobCgroupParts): CgroupOfJob {
  return new CgroupOfJob(keptParts(parts));
}

export class CgroupOfJob implements JobCgroup {
  readonly id: string;
  readonly path: string;
  #parts: KeptParts;
  #destroying: Promise<void> | undefined;

  constructor(parts: KeptParts) {
    this.id = parts.id;
    this.path = parts.path;
    this.#parts = parts;
  }

  async stats(): Promise<CgroupStats> {
    const { fs, statFiles, readStats } = this.#parts;
    return readStats(await readFiles(fs, statFiles()));
  }

  async signalAll(signal: NodeJS.Signals): Promise<number> {
    const { processes } = this.#parts;
    // Frozen, the job's processes neither fork nor exit while we look; the signal is delivered when
    // they thaw (signalListed says why a freeze alone is not trusted).
    await processes.freeze();
    try {
      return (await signalListed(processes, signal)).signalled;
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
    const { processes, fs } = this.#parts;
    const dirs = [...this.#parts.dirs].reverse();
    // Usually the job is over and its cgroups are empty: remove them in one batch. A process left
    // (EBUSY) takes the careful path below; any other failure is reported as it is.
    const removal = await fs.run(dirs.map((dir) => ({ op: 'rmdir', path: dir, optional: true })));
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

/**
 * The limits in force for a job: its own, with the pids default filled in and each disk limit
 * naming the disk it applies to (the working directory's, when none was given).
 */
export function limitsInForce(limits: Limits, resolved: { pids?: number; io: readonly { device: string }[] }): Limits {
  // Object.assign, not spreads: V8 gives every object made by `{ ...a }` and then extended (or by
  // `{ ...a, b }`) a hidden class of its own, and the job keeps these for its life.
  const inForce: Limits = Object.assign({}, limits);
  if (resolved.pids !== undefined) inForce.pids = resolved.pids;
  if (limits.io !== undefined && limits.io.length > 0) {
    inForce.io = limits.io.map((io, i) => Object.assign({}, io, { device: io.device ?? resolved.io[i]!.device }));
  }
  return inForce;
}
