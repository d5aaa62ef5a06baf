// One Limits type and one driver interface; the worker never knows which cgroup version runs below.
// (Shape after opencontainers/cgroups: Resources + Manager{Apply, Set, GetStats, Destroy}.)
import type { IoDeviceStats, ResourceStats } from '../resource-stats';
import type { CgroupOp, CgroupOpsResult } from './cgroup-fs';

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

/** What the native spawn needs to place a process in the job's cgroups from birth. */
export interface SpawnPlacement {
  /** cgroup v2 directory fd (clone3 CLONE_INTO_CGROUP target); absent on legacy (v1-only) hosts. */
  cgroupFd?: number;
  /** v1 cgroup.procs fds the child writes "0" to before exec (hybrid/legacy hosts). */
  joinProcsFds: number[];
}

/** The same placement as paths, for the addon to open (and close) off the JS thread. */
export interface SpawnPlacementPaths {
  cgroupPath?: string;
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

export interface JobCgroup {
  readonly id: string;
  /** The unified-hierarchy directory (the one holding cgroup.procs/cgroup.kill/cgroup.events); on legacy hosts, the v1 freezer one. */
  readonly path: string;
  /** Opens the fds for a spawn; close them with the returned release() right after spawning. */
  openPlacement(): { placement: SpawnPlacement; release(): void };
  placementPaths(): SpawnPlacementPaths;
  stats(): Promise<CgroupStats>;
  /**
   * After the main process exited: whether any process is left and the stats, read in one go, and
   * the directories removed in the same go if nothing is left.
   */
  settle(): Promise<SettledCgroup>;
  /**
   * The one batch settle() runs, for whoever can run it sooner (the addon, on its capture thread,
   * the moment the process is reaped); undefined where settling takes more than one batch (legacy).
   */
  settleOps(): CgroupOp[] | undefined;
  /** settle()'s answer from the outcome of settleOps() run elsewhere. */
  settled(result: CgroupOpsResult): Promise<SettledCgroup>;
  /** Sends `signal` to every process in the job; returns how many were signalled. */
  signalAll(signal: NodeJS.Signals): Promise<number>;
  /** Kills every process in the job, escaped double-forks included (cgroup.kill or freeze-kill-thaw). */
  kill(): Promise<void>;
  /** Resolves true once no process is left (cgroup.events "populated 0"), false on timeout. */
  waitEmpty(timeoutMs: number): Promise<boolean>;
  /** Kills what is left, waits until empty, removes the directories (every hierarchy). Idempotent. */
  destroy(): Promise<void>;
}

/** A job's cgroup before it exists: the ops that create it, and its handle for once they have run. */
export interface PlannedJobCgroup {
  /** mkdirs and limit writes, in order (the Worker has the addon run them in the spawn's own trip). */
  createOps: CgroupOp[];
  cgroup: JobCgroup;
  /** The error to report when createOps stopped at `index` with `cause` (after undoing what they did). */
  creationError(index: number, cause: unknown): Error;
}

export interface CgroupDriver {
  readonly mode: CgroupMode;
  /** Where job cgroups are created: in the unified hierarchy (on legacy hosts, the v1 freezer one). */
  readonly jobsRoot: string;
  /**
   * Validates and resolves limits without touching any cgroup: ValidationError for a bad value or
   * device, JobworkerError 'failed-precondition' for a limit whose controller this host lacks.
   */
  validate(limits: Limits, cwd: string): Promise<void>;
  /** Creates the job's cgroup(s) and writes its limits. On any failure nothing is left behind. */
  create(id: string, limits: Limits, cwd: string): Promise<JobCgroup>;
  /** Validates the limits and says how create() would do it, without touching any cgroup. */
  plan(id: string, limits: Limits, cwd: string): Promise<PlannedJobCgroup>;
  /** Ids of job cgroups that exist under the root (for finding orphans after a crash). */
  listJobIds(): Promise<string[]>;
  /** A handle on an existing job cgroup (for recovery), or undefined if it does not exist. */
  open(id: string): Promise<JobCgroup | undefined>;
}

/** Default pids.max, so a fork bomb in one job cannot exhaust the host's pids. */
export const DEFAULT_PIDS_MAX = 4096;
