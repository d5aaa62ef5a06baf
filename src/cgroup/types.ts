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
  /** v1 cgroup.procs files the child joins (writes "0" to) before exec: hybrid and legacy hosts. */
  joinProcsPaths: string[];
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
  /** Sends `signal` to every process in the job; returns how many were signalled. */
  signalAll(signal: NodeJS.Signals): Promise<number>;
  /** Kills every process in the job, escaped double-forks included (cgroup.kill or freeze-kill-thaw). */
  kill(): Promise<void>;
  /** Resolves true once no process is left (cgroup.events "populated 0"), false on timeout. */
  waitEmpty(timeoutMs: number): Promise<boolean>;
  /** Kills what is left, waits until empty, removes the directories (every hierarchy). Idempotent. */
  destroy(): Promise<void>;
}

/**
 * A job's cgroup before it exists, as data: the ops that create it (directories, then limits), the
 * ops that settle it once its main process has exited (is anything left, the final stats, the
 * removal), and where a spawn places the process. The Worker hands createOps and settleOps to the
 * addon's spawn, which runs them in the spawn's own threadpool trip and right after the exit; the
 * answers are read back here by file, not by position.
 */
export interface JobCgroupPlan {
  readonly id: string;
  /** The limits in force: the job's own, the pids default filled in, each disk named. */
  readonly limits: Limits;
  /** mkdirs and limit writes, in order. A runner that fails part-way must remove the directories it made. */
  readonly createOps: readonly CgroupOp[];
  /** Whether a process is left and the stats (reads), then the removal (rmdirs; EBUSY if a process is left). */
  readonly settleOps: readonly CgroupOp[];
  readonly placement: SpawnPlacementPaths;
  /** The live handle, once createOps have run. */
  readonly cgroup: JobCgroup;
  /** Why createOps stopped where the report says (they failed: the report has an error). */
  creationError(report: OpsReport): Error;
  /** What settleOps found. */
  settled(report: OpsReport): SettledCgroup;
}

export interface CgroupDriver {
  readonly mode: CgroupMode;
  /** Where job cgroups are created: in the unified hierarchy (on legacy hosts, the v1 freezer one). */
  readonly jobsRoot: string;
  /** The ops runner this driver's batches go through (the same one a plan's ops are meant for). */
  readonly fs: CgroupFs;
  /**
   * Validates the limits and says how the job's cgroup is made and settled, without touching any
   * cgroup: ValidationError for a bad value or device, JobworkerError 'failed-precondition' for a
   * limit whose controller this host lacks.
   */
  plan(id: string, limits: Limits, cwd: string): Promise<JobCgroupPlan>;
  /** Ids of job cgroups that exist under the root (for finding orphans after a crash). */
  listJobIds(): Promise<string[]>;
  /** A handle on an existing job cgroup (for recovery), or undefined if it does not exist. */
  open(id: string): Promise<JobCgroup | undefined>;
}

/** Default pids.max, so a fork bomb in one job cannot exhaust the host's pids. */
export const DEFAULT_PIDS_MAX = 4096;
