// One Limits type and one driver interface; the worker never knows which cgroup version runs below.
// (Shape after opencontainers/cgroups: Resources + Manager{Apply, Set, GetStats, Destroy}.)
import type { IoDeviceStats, ResourceStats } from '../resource-stats';
import type { CgroupFs, CgroupOp, OpsReport } from './cgroup-fs';

export type CgroupMode = 'unified' | 'hybrid' | 'legacy';

/** The resource controllers jobworker uses, by their cgroup v2 names (on v1, io is "blkio"). */
export type ResourceController = 'cpu' | 'memory' | 'io' | 'pids';

/** Disk IO limits for one device, given as a device node or any path on the device. */
export interface IoLimit {
  /** "/dev/vda", "/dev/vda1" (a partition means its whole disk), "MAJ:MIN", or any path on the disk. Default: the disk behind the job's working directory. */
  device?: string;
  readBps?: number;
  writeBps?: number;
  readIops?: number;
  writeIops?: number;
}

/** Every limit is optional; an absent one means "no limit" (pids has a default, see DEFAULT_PIDS_MAX). */
export interface Limits {
  /** CPU quota as a number of CPUs: 0.5 = half of one CPU, 2 = two CPUs. */
  cpu?: number;
  /** Relative CPU weight, 1..10000 (cgroup v2 scale, 100 = default). */
  cpuWeight?: number;
  /** Hard memory limit in bytes; exceeding it OOM-kills the whole job. Swap is not allowed. */
  memoryBytes?: number;
  /** Soft memory limit in bytes: above it the job is throttled and reclaimed hard. */
  memoryHighBytes?: number;
  /** Maximum number of processes/threads in the job. */
  pids?: number;
  io?: IoLimit[];
}

/** The shape every layer shares (src/resource-stats.ts), by the name the cgroup layer gives it. */
export type CgroupStats = ResourceStats;
export type { IoDeviceStats };

/** Where a spawn puts the process, as paths the addon opens (and closes) off the JS thread. */
export interface SpawnPlacementPaths {
  /** cgroup v2 directory the process is born into (clone3 CLONE_INTO_CGROUP); absent on legacy (v1-only) hosts. */
  cgroupPath?: string;
  /** v1 `tasks` files the child joins (writes "0" to: itself, without the global migration lock) before exec: hybrid and legacy hosts. */
  joinTasksPaths: string[];
}

/** What a job's cgroup looked like when its main process was gone. */
export interface SettledCgroup {
  /** No process left (nothing outlived the main process). */
  empty: boolean;
  /** Read before any removal. */
  stats: CgroupStats;
  /** The directories are gone (they were empty); otherwise destroy() is still to be called. */
  removed: boolean;
}

/** A job's cgroup while it exists: for reading, signalling and killing its processes, and removing it. */
export interface JobCgroup {
  readonly id: string;
  /** The unified-hierarchy directory (the one holding cgroup.procs/cgroup.kill/cgroup.events); on legacy hosts, the v1 freezer one. */
  readonly path: string;
  /** A snapshot of its resource use, read in one batch. */
  stats(): Promise<CgroupStats>;
  /**
   * Sends `signal` to every process in the job, each pinned before it is signalled (the process's
   * PinnedSignaller: useKillSignaller); returns how many were signalled.
   */
  signalAll(signal: NodeJS.Signals): Promise<number>;
  /** Kills every process in the job, escaped double-forks included (cgroup.kill or freeze-kill-thaw). */
  kill(): Promise<void>;
  /** Resolves true once no process is left (cgroup.events "populated 0"), false on timeout. */
  waitEmpty(timeoutMs: number): Promise<boolean>;
  /** Kills what is left, waits until empty, removes the directories (every hierarchy). Idempotent. */
  destroy(): Promise<void>;
}

/** Where a job's cgroup is: <base>/jobs/<slice>/<id>. */
export interface JobCgroupName {
  id: string;
  /**
   * Its identity's slice directory (sliceNameOf(identity)); absent for a job cgroup directly in
   * jobs/ (the layout before slices: found only as an orphan).
   */
  slice?: string;
}

/** What the spawn made of a plan's create ops: all of them, none (one failed, the rest undone), or cannot tell. */
export type CreateOutcome = 'created' | 'undone' | 'unknown';

/**
 * A job's cgroup before it exists, as data: the ops that create it (its identity's slice first when
 * that does not exist yet, then its own directories and limits), the ops that settle it once its
 * main process has exited (is anything left, the final stats, the removal), and where a spawn places
 * the process. The Worker hands createOps and settleOps to the addon's spawn, which runs them in the
 * spawn's own threadpool trip and right after the exit; the answers are read back here by file, not
 * by position. The plan holds the job's place in its slice until released.
 */
export interface JobCgroupPlan {
  readonly id: string;
  readonly name: JobCgroupName;
  /** The limits in force: the job's own, the pids default filled in, each disk named. */
  readonly limits: Limits;
  /** mkdirs and limit writes, in order. A runner that fails part-way must remove the directories it made. */
  readonly createOps: readonly CgroupOp[];
  /**
   * Limit writes made once the job's process has exec'd (and, with a PID namespace, its init too):
   * those that must not apply while the spawn's processes still share the daemon's memory.
   */
  readonly startedOps: readonly CgroupOp[];
  /** Whether a process is left and the stats (reads), then the removal (rmdirs; EBUSY if a process is left). */
  readonly settleOps: readonly CgroupOp[];
  readonly placement: SpawnPlacementPaths;
  /** The live handle, once createOps have run. */
  readonly cgroup: JobCgroup;
  /** Why createOps stopped where the report says (they failed: the report has an error). */
  creationError(report: OpsReport): Error;
  /** What settleOps found. */
  settled(report: OpsReport): SettledCgroup;
  /** Says what the spawn made of createOps (once it returned or failed): whether the slice now exists. */
  createOpsRan(outcome: CreateOutcome): void;
  /**
   * The job's cgroup is gone, or was never made: the job leaves its slice (which may then be
   * removed, see docs/cgroups.md). Call once; resolves after such a removal (rejects if it failed).
   */
  release(): Promise<void>;
}

/** Who a job belongs to: its cgroup goes in that identity's slice. */
export interface JobOwnerRef {
  id: string;
  /** The identity (certificate name; "" for jobs without an owner). */
  identity: string;
}

export interface CgroupDriver {
  readonly mode: CgroupMode;
  /** Where job cgroups are created: in the unified hierarchy (on legacy hosts, the v1 freezer one). */
  readonly jobsRoot: string;
  /** The ops runner this driver's batches go through (the same one a plan's ops are meant for). */
  readonly fs: CgroupFs;
  /**
   * Validates the limits and says how the job's cgroup is made and settled, without touching any
   * cgroup: ValidationError for a bad value or device (or one above its identity's slice),
   * JobworkerError 'failed-precondition' for a limit whose controller this host lacks. Waits while
   * the identity's slice is being made or removed by another job.
   */
  plan(job: JobOwnerRef, limits: Limits, cwd: string): Promise<JobCgroupPlan>;
  /** Job cgroups that exist under the root, in every slice (for finding orphans after a crash). */
  listJobs(): Promise<JobCgroupName[]>;
  /** A handle on an existing job cgroup (for recovery), or undefined if it does not exist. */
  open(name: JobCgroupName): Promise<JobCgroup | undefined>;
  /** The slice directory of an identity. Pure. */
  sliceOf(identity: string): string;
  /** An identity's slice limits in force (from the driver's sliceLimits), devices named. */
  sliceLimits(identity: string): Promise<Limits>;
  /** What an identity's slice uses now (all its jobs together); null when it has no slice. */
  sliceStats(identity: string): Promise<CgroupStats | null>;
  /**
   * Removes every slice no job is in: those the driver let go of and kept, and those found on disk
   * (after a crash; call once recovery removed the orphan job cgroups). A slice with a job cgroup left
   * in it stays (and the error says so).
   */
  removeIdleSlices(): Promise<void>;
}

/** Default pids.max, so a fork bomb in one job cannot exhaust the host's pids. */
export const DEFAULT_PIDS_MAX = 4096;

/**
 * Signals a process named by a handle taken while it had the pid (a pidfd: native/), so that a
 * signal never reaches a process that took the pid over later. The cgroup layer spawns nothing and
 * signals nothing by number once the worker has handed it this (useKillSignaller).
 */
export interface PinnedSignaller {
  /** A handle naming the process that has `pid` now; null if none has. Released with release(). */
  pin(pid: number): number | null;
  /** True if sent, false if that process has exited. */
  send(handle: number, signal: NodeJS.Signals): boolean;
  release(handle: number): void;
}
