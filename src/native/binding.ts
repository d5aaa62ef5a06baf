// The addon's whole surface, declared once. Only this folder loads the addon. The values it hands
// back are made in native/js_values.cc: keep the two in step.
import * as path from 'node:path';

import type { Isolation } from './isolation';

export interface BindingSpawnOptions {
  execCandidates: string[];
  argv: string[];
  env: string[];
  cwd?: string;
  cgroupFd?: number;
  joinTasksFds?: number[];
  /** Placement by path instead of fd: opened (and closed) by the addon on the spawning thread. */
  cgroupPath?: string;
  joinTasksPaths?: string[];
  /** Filesystem ops (encodeFsOps) run first on the same thread (undone if one fails: stage "setup", index). */
  setupOps?: string;
  /** How long the child may take to exec before it is killed (stage clone or init, ETIMEDOUT); default 10 s. */
  startTimeoutMs?: number;
  /** Tests: the child waits before its exec until killed (as a SIGSTOP from the job's user would hold it). */
  holdBeforeExecForTest?: boolean;
  /** Filesystem ops (encodeFsOps) run once the process has exec'd, before the spawn returns (stage "started-ops"). */
  startedOps?: string;
  /** Filesystem ops run once the process is reaped and its output is on disk; the outcome comes with "exit". */
  exitOps?: string;
  logPath: string;
  /** An emptied file renamed to logPath instead of creating one (a new one is created if that fails). */
  logRecycleFrom?: string;
  logMaxBytes?: number;
  /** The identity's log budget, shared with its other jobs: charged with every byte appended. */
  logBudget?: BindingLogBudget;
  uid?: number;
  gid?: number;
  groups?: number[];
  nofileSoft?: number;
  /** Namespaces, mounts, no_new_privs, capabilities: see Isolation (src/native/isolation.ts). */
  isolation?: Isolation;
  forceGatedFork?: boolean;
}

/** What was being done when the native core failed (native/native_error.h, Stage). */
export type NativeStage =
  // A spawn, in the order its steps run.
  | 'setup'
  | 'log'
  | 'placement'
  | 'pipes'
  | 'clone'
  | 'cgroup'
  | 'namespaces'
  | 'mount'
  | 'session'
  | 'stdio'
  | 'rlimit'
  | 'credentials'
  | 'close-fds'
  | 'chdir'
  | 'exec'
  | 'init'
  | 'watch'
  // Filesystem ops: an fsOps() batch, a spawn's exitOps.
  | 'fs-ops'
  | 'exit-ops'
  // The capture thread: starting it, signalling a process.
  | 'reactor'
  | 'signal'
  // A spawn's startedOps (after the exec; the process was killed).
  | 'started-ops';

/** The fields of every error the addon throws or reports. */
export interface BindingErrorFields {
  stage: NativeStage;
  /** errno name, e.g. "ENOENT". */
  code: string;
  errno: number;
  /** The file or directory concerned, when there is one. */
  path?: string;
  /** The op that failed (setup, fs-ops, exit-ops), or the exec candidate reported (exec). */
  index?: number;
}

export type BindingError = Error & BindingErrorFields;

export interface BindingFsOpsResult {
  /** Ops done; when `error` is set, the index of the op that failed. */
  completed: number;
  /** Per op: what a read returned; null for other ops, skipped optional ones and ops not run. */
  reads: (string | null)[];
  error?: BindingError;
}

/** A job's events, in this order: any number of "output", then "exit", then "close". */
export type BindingEvent =
  | {
      /** The log grew (coalesced; only while watchOutput(true)). */
      type: 'output';
      logBytes: number;
    }
  | {
      /** The process was reaped, its pipes read dry, and its exit ops (if any) have run. */
      type: 'exit';
      code: number | null;
      signal: number | null;
      coreDumped: boolean;
      userCpuMicros: number;
      systemCpuMicros: number;
      exitedAtMs: number;
      logBytes: number;
      exitOps?: BindingFsOpsResult;
    }
  | ({
      /** Capture ended: both pipes at EOF, or closeCapture(). */
      type: 'close';
    } & BindingLogSummary);

/** What a job's log holds once capture has ended. */
export interface BindingLogSummary {
  logBytes: number;
  /** Output not kept: beyond the size cap, or lost to a failed write (see writeError). */
  droppedBytes: number;
  /** The size cap was reached: a "truncated" marker ends the log. */
  truncated: boolean;
  /** errno name of the first failed log write (e.g. ENOSPC), or null. */
  writeError: string | null;
}

export type BindingListener = (event: BindingEvent) => void;

export interface BindingProcessHandle {
  readonly pid: number;
  readonly logBytes: number;
  readonly gatedFork: boolean;
  /** Throws a BindingError (stage "signal"). */
  kill(signal: number): boolean;
  closeCapture(): void;
  watchOutput(on: boolean): void;
}

/** native/log_budget.h: bytes of log an identity may still write, shared by its jobs' capture. */
export interface BindingLogBudget {
  readonly limit: number;
  /** Bytes charged: appended by capture (after each file header), plus add()ed. May pass limit by markers. */
  readonly used: number;
  /** Charges (positive) or releases (negative) bytes already on disk. */
  add(bytes: number): void;
}

export interface Binding {
  /** On the calling thread: returns once the child has exec'd (or throws a BindingError saying why it could not). */
  spawn(options: BindingSpawnOptions, listener: BindingListener): BindingProcessHandle;
  /** The same on a libuv threadpool thread. */
  spawnAsync(options: BindingSpawnOptions, listener: BindingListener): Promise<BindingProcessHandle>;
  /** Runs filesystem ops in order on a libuv threadpool thread; stops at (and reports) the first failure. */
  fsOps(encodedOps: string): Promise<BindingFsOpsResult>;
  /** glibc malloc_trim(0): gives the allocator's free memory back to the kernel; true if any was. */
  trimNativeHeap(): boolean;
  LogBudget: new (limitBytes: number) => BindingLogBudget;
  /** flock(fd, LOCK_EX | LOCK_NB): true if locked, false if another open file holds a lock; throws otherwise. */
  tryLockExclusive(fd: number): boolean;
  /** preadv2(RWF_NOWAIT) on the calling thread: bytes read, or -1 when not served from the page cache. */
  readCached(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  /** pidfd_open(pid): an fd naming that very process (close it), or -1 if no process has the pid. */
  pidfdOpen(pid: number): number;
  /** pidfd_send_signal: true if sent, false if the process has exited. */
  pidfdSendSignal(fd: number, signo: number): boolean;
}

/** Whether `error` was made by the addon (native_error_to_js). */
export function isBindingError(error: unknown): error is BindingError {
  return error instanceof Error && typeof (error as Partial<BindingErrorFields>).stage === 'string';
}

const addonPath = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'jobworker.node');

export const binding: Binding = require(addonPath) as Binding;
