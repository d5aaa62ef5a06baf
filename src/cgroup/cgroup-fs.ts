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
   * Optional: runs a batch of ops in one go (the Worker gives the addon's, which runs them on a
   * libuv threadpool thread). Without it, runCgroupOps() does them one by one with the calls above.
   */
  batch?(ops: readonly CgroupOp[]): Promise<CgroupOpsResult>;
}

/** One step of a batch. `optional`: ENOENT skips it (a file this kernel lacks, a cgroup already gone). */
export type CgroupOp =
  | { op: 'mkdir' | 'rmdir' | 'read'; path: string; optional?: boolean }
  | { op: 'write'; path: string; value: string; optional?: boolean };

export interface CgroupOpsResult {
  /** Ops done; when `error` is set, the index of the op that failed. */
  completed: number;
  /** Per op: what a read returned; null for other ops and for skipped optional reads. */
  reads: (string | null)[];
  /** Why the op at `completed` failed (an Error with the errno name in `code`). */
  error?: Error;
}

/** Runs ops in order and stops at the first failure, which is reported, not thrown. */
export async function runCgroupOps(fs: CgroupFs, ops: readonly CgroupOp[]): Promise<CgroupOpsResult> {
  if (fs.batch !== undefined) return fs.batch(ops);
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
 * A CgroupFs whose reads of `files` come from one batch read up front (each file is read once);
 * other files, and files read again, go to `fs`. How a stats snapshot takes one trip, whatever the
 * parsers ask for and in what order.
 */
export async function prefetchReads(fs: CgroupFs, files: readonly string[]): Promise<CgroupFs> {
  const ops: CgroupOp[] = files.map((file) => ({ op: 'read', path: file, optional: true }));
  const result = await runCgroupOps(fs, ops);
  if (result.error !== undefined) throw cgroupOpError(ops[result.completed]!, result.error);
  return prefetchedFs(fs, new Map(files.map((file, i) => [file, result.reads[i]!])));
}

/** A CgroupFs whose reads of the files in `texts` (null: the file does not exist) are answered from it, once each. */
export function prefetchedFs(fs: CgroupFs, texts: Map<string, string | null>): CgroupFs {
  return {
    mkdir: (dir) => fs.mkdir(dir),
    rmdir: (dir) => fs.rmdir(dir),
    write: (file, value) => fs.write(file, value),
    children: (dir) => fs.children(dir),
    batch: (more) => runCgroupOps(fs, more),
    async read(file) {
      if (!texts.has(file)) return fs.read(file);
      const text = texts.get(file)!;
      texts.delete(file);
      if (text === null) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: 'ENOENT' });
      return text;
    },
  };
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
