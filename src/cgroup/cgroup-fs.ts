// Every directory and control-file operation on a cgroup filesystem goes through a CgroupFs, so that
// each failure says what was being done, where, and the errno; and so unit tests can put a fake
// kernel (a temporary directory tree) in its place.
import { closeSync, constants, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, writeSync } from 'node:fs';
import * as path from 'node:path';

import { errorCode, JobworkerError, systemError, type ErrorKind, type SystemError } from '../errors';

export interface CgroupFs {
  /** Creates one cgroup (the kernel fills it with control files). */
  mkdir(dir: string): Promise<void>;
  /** Removes one empty cgroup. */
  rmdir(dir: string): Promise<void>;
  read(file: string): Promise<string>;
  /** Writes `value` into an existing control file with a single write(2); never creates the file. */
  write(file: string, value: string): Promise<void>;
  /** Names of the child cgroups (sub-directories) of a cgroup. */
  children(dir: string): Promise<string[]>;
  /**
   * Runs ops in order and stops at the first failure, which is reported, not thrown: the one ops
   * runner every batch goes through. The Worker gives the addon's (a libuv threadpool thread, and
   * the same ops run inside a spawn and at a job's exit); tests give runOpsOneByOne() over a fake
   * kernel.
   */
  run(ops: readonly CgroupOp[]): Promise<OpsReport>;
  /**
   * Takes an exclusive lock on a directory that lasts until released or until this process dies
   * (flock(2) through an open fd: the Worker gives the addon's); undefined if another holds one.
   * Absent: no owner lock is taken (a fake kernel, or no addon).
   */
  lock?(dir: string): RootLock | undefined;
}

/** A lock held on a cgroup root (see root-lock.ts). */
export interface RootLock {
  /** Lets go of it. Idempotent. */
  release(): void;
}

/** One step of a batch. `optional`: ENOENT skips it (a file this kernel lacks, a cgroup already gone). */
export type CgroupOp =
  | { op: 'mkdir' | 'rmdir' | 'read'; path: string; optional?: boolean }
  | { op: 'write'; path: string; value: string; optional?: boolean };

/** What a runner did with a list of ops, by position (OpsResults reads it by file). */
export interface OpsReport {
  /** Ops done; when `error` is set, the index of the op that failed. */
  completed: number;
  /** Per op: what a read returned; null for other ops and for skipped optional reads. */
  reads: (string | null)[];
  /** Why the op at `completed` failed (an Error with the errno name in `code`). */
  error?: Error;
}

/** A runner made of a CgroupFs's single calls: for fake kernels, and cgroupfs where no addon runs. */
export async function runOpsOneByOne(fs: Omit<CgroupFs, 'run'>, ops: readonly CgroupOp[]): Promise<OpsReport> {
  const reads: (string | null)[] = ops.map(() => null);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    try {
      if (op.op === 'mkdir') await fs.mkdir(op.path);
      else if (op.op === 'rmdir') await fs.rmdir(op.path);
      else if (op.op === 'write') await fs.write(op.path, op.value);
      else reads[i] = await fs.read(op.path);
    } catch (error) {
      if (op.optional === true && errorCode(error) === 'ENOENT') continue;
      return { completed: i, reads, error: error instanceof Error ? error : new Error(String(error)) };
    }
  }
  return { completed: ops.length, reads };
}

/**
 * A batch's outcome read by file, not by position: every op of a plan is known by its path (a file
 * is read at most once per batch), so interpreting a batch cannot drift from how it was built.
 */
export class OpsResults {
  /** The op that stopped the batch, and why; undefined when every op ran (or was skipped). */
  readonly failed: { op: CgroupOp; error: Error } | undefined;
  #texts = new Map<string, string | null>();

  constructor(ops: readonly CgroupOp[], report: OpsReport) {
    for (let i = 0; i < Math.min(report.completed, ops.length); i++) {
      const op = ops[i]!;
      if (op.op === 'read') this.#texts.set(op.path, report.reads[i] ?? null);
    }
    const failedOp = ops[report.completed];
    this.failed = report.error === undefined || failedOp === undefined ? undefined : { op: failedOp, error: report.error };
  }

  /** Whether the read of `file` ran: its text, null if it was skipped (ENOENT); undefined if it never ran. */
  text(file: string): string | null | undefined {
    return this.#texts.get(file);
  }

  /** The reads as control files for the stats parsers. */
  files(): ControlFiles {
    return {
      required: (file) => {
        const text = this.#texts.get(file);
        if (text === undefined) throw new JobworkerError('internal', `${file} was not part of the batch that was read`);
        if (text === null) throw cgroupFsError('read', file, Object.assign(new Error('no such file'), { code: 'ENOENT' }));
        return text;
      },
      optional: (file) => {
        const text = this.#texts.get(file);
        if (text === undefined) throw new JobworkerError('internal', `${file} was not part of the batch that was read`);
        return text ?? undefined;
      },
    };
  }
}

/** Control files already read (in one batch): the stats parsers read nothing themselves. */
export interface ControlFiles {
  /** A file the kernel always has: its text (an error naming it if it was missing). */
  required(file: string): string;
  /** A file of newer kernels or optional controllers: undefined where it is missing. */
  optional(file: string): string | undefined;
}

/** One controller's share of a stats snapshot: the files it is read from and how (pure). */
export interface StatsPart<T> {
  /** File names inside the job's directory, all read in the snapshot's one batch. */
  readonly files: readonly string[];
  parse(files: ControlFiles, dir: string): T;
}

/** Reads `files` in one batch (each optional) and hands them to the parsers. */
export async function readFiles(fs: CgroupFs, files: readonly string[]): Promise<ControlFiles> {
  const ops: CgroupOp[] = files.map((file) => ({ op: 'read', path: file, optional: true }));
  const results = new OpsResults(ops, await fs.run(ops));
  if (results.failed !== undefined) throw cgroupOpError(results.failed.op, results.failed.error);
  return results.files();
}

/** The error a failed op is reported with, worded as the helpers below word theirs. */
export function cgroupOpError(op: CgroupOp, cause: unknown): SystemError {
  switch (op.op) {
    case 'mkdir':
      return cgroupFsError('create cgroup', op.path, cause);
    case 'rmdir':
      return cgroupFsError('remove cgroup', op.path, cause);
    case 'write':
      // EINVAL from a limit file means the kernel refused the value itself: name it.
      return cgroupFsError(`write "${op.value}" to`, op.path, cause);
    case 'read':
      return cgroupFsError('read', op.path, cause);
  }
}

/**
 * The real thing. Synchronous system calls behind the promise interface, on purpose: cgroupfs
 * operations are in-kernel bookkeeping that take microseconds, while a trip through libuv's
 * threadpool costs tens of microseconds and queues behind the state directory's fsyncs on the same
 * four threads. (Migrations, which can wait for an RCU grace period, are done by the native
 * core in the child, not here; the only one here is the daemon's own move at start-up.)
 */
export const nodeCgroupFs: CgroupFs = {
  async mkdir(dir) {
    mkdirSync(dir);
  },
  async rmdir(dir) {
    rmdirSync(dir);
  },
  async read(file) {
    return readFileSync(file, 'utf8');
  },
  async write(file, value) {
    // O_WRONLY without O_CREAT: a missing control file is ENOENT (O_CREAT would say EACCES on
    // cgroupfs), and write-only files such as cgroup.kill refuse O_RDWR.
    const fd = openSync(file, constants.O_WRONLY);
    try {
      // The kernel parses each write(2) on its own: the value must go in one call.
      writeSync(fd, value);
    } finally {
      closeSync(fd);
    }
  },
  async children(dir) {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  },
  run(ops) {
    return runOpsOneByOne(nodeCgroupFs, ops);
  },
};

/**
 * `dir`/`name` for a normalized absolute cgroup directory and a plain file or job name: what
 * path.join() would give, without its normalization pass (this runs ~30 times per job).
 */
export function childPath(dir: string, name: string): string {
  return `${dir}/${name}`;
}

/** One value to write into one control file of a cgroup. */
export interface ControlWrite {
  file: string;
  value: string;
  /** Skip silently when the kernel does not have the file (e.g. memory.swap.max without swap accounting). */
  optional?: boolean;
  /**
   * Written once the job's process has exec'd, not before: a setting that must not reach the spawn's
   * own processes while they still share the daemon's memory (memory.oom.group, see v2/memory.ts).
   */
  afterStart?: boolean;
}

/** The CPU quota's files (v2 cpu.max; v1 cpu.cfs_period_us, cpu.cfs_quota_us). */
const QUOTA_FILES: ReadonlySet<string> = new Set(['cpu.max', 'cpu.cfs_period_us', 'cpu.cfs_quota_us']);

/**
 * A job's CPU quota is written once its process has exec'd (afterStart): until then its cgroup
 * holds only the spawn's own work (mounts, credentials, init, the PATH search), which at a quota of
 * 1 % took seconds and held a threadpool thread of the daemon the while. The job's own code runs
 * under the quota from its first microseconds.
 */
export function quotaAfterStart(writes: readonly ControlWrite[]): ControlWrite[] {
  return writes.map((write) => (QUOTA_FILES.has(write.file) ? { ...write, afterStart: true } : write));
}

/**
 * Whether a cgroupfs error means the cgroup is gone: ENOENT once it is removed, ENODEV while it is
 * being removed (the kernel refuses control-file access to a dying cgroup), e.g. when a stop's kill
 * meets the removal that the job's exit started on the addon's settle thread.
 */
export function isCgroupGone(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENODEV';
}

/** Maps an errno to how the server should report it. */
export function kindOfErrno(code: string | undefined): ErrorKind {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 'permission-denied';
    case 'EEXIST':
      return 'already-exists';
    case 'ENOENT':
      return 'not-found';
    case 'EAGAIN':
    case 'ENOSPC':
    case 'ENOMEM':
      return 'resource-exhausted';
    default:
      return 'internal';
  }
}

/** A SystemError for a failed cgroupfs operation, its kind taken from the errno. */
export function cgroupFsError(operation: string, where: string, cause: unknown): SystemError {
  return systemError(operation, where, cause, kindOfErrno(errorCode(cause)));
}

/** Creates `dir` and any missing parents; existing ones are fine. Returns the ones it created, top first. */
export async function makeCgroupPath(fs: CgroupFs, dir: string): Promise<string[]> {
  try {
    await fs.mkdir(dir);
    return [dir];
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EEXIST') return [];
    if (code !== 'ENOENT') throw cgroupFsError('create cgroup', dir, error);
  }
  const created = await makeCgroupPath(fs, path.dirname(dir));
  try {
    await fs.mkdir(dir);
    return [...created, dir];
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return created; // someone else was quicker
    throw cgroupFsError('create cgroup', dir, error);
  }
}

export async function readControl(fs: CgroupFs, dir: string, file: string): Promise<string> {
  const where = childPath(dir, file);
  try {
    return await fs.read(where);
  } catch (error) {
    throw cgroupFsError('read', where, error);
  }
}

/** Reads a control file, or returns undefined when the kernel does not have it. */
export async function readOptionalControl(fs: CgroupFs, dir: string, file: string): Promise<string | undefined> {
  const where = childPath(dir, file);
  try {
    return await fs.read(where);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw cgroupFsError('read', where, error);
  }
}

export async function listChildren(fs: CgroupFs, dir: string): Promise<string[]> {
  try {
    return await fs.children(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw cgroupFsError('list cgroups in', dir, error);
  }
}

const RMDIR_BUSY_RETRY_MS = 3000;

/**
 * Removes a cgroup; true if it was there. EBUSY is retried briefly: right after the last process
 * exits, v1 hierarchies may still count a dying task for a moment. A missing cgroup is fine
 * (idempotent destroy).
 */
export async function removeCgroup(fs: CgroupFs, dir: string): Promise<boolean> {
  const deadline = Date.now() + RMDIR_BUSY_RETRY_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      await fs.rmdir(dir);
      return true;
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT') return false;
      if (code !== 'EBUSY' || Date.now() >= deadline) throw cgroupFsError('remove cgroup', dir, error);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** Parses "key value" lines (cpu.stat, memory.events, memory.oom_control…). */
export function parseFlatKeyed(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === undefined || key === '' || value === undefined) continue;
    values.set(key, value === 'max' ? Number.POSITIVE_INFINITY : Number(value));
  }
  return values;
}

/** Parses a single-number file ("1234\n"). */
export function parseSingleNumber(text: string, where: string): number {
  const value = Number(text.trim());
  if (!Number.isFinite(value)) throw new JobworkerError('internal', `unexpected content in ${where}: ${JSON.stringify(text)}`);
  return value;
}
