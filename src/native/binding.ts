// The addon's whole surface, declared once. Only this folder loads the addon.
import * as path from 'node:path';

export interface BindingSpawnOptions {
  execCandidates: string[];
  argv: string[];
  env: string[];
  cwd?: string;
  cgroupFd?: number;
  joinProcsFds?: number[];
  /** Placement by path instead of fd: opened (and closed) by the addon on the spawning thread. */
  cgroupPath?: string;
  joinProcsPaths?: string[];
  /** Filesystem ops (encodeFsOps) run first on the same thread (undone if one fails: stage "setup", setupIndex). */
  setupOps?: string;
  /** Filesystem ops the capture thread runs once the process is reaped; the outcome comes with "exit". */
  exitOps?: string;
  logPath: string;
  /** An emptied file renamed to logPath instead of creating one (a new one is created if that fails). */
  logRecycleFrom?: string;
  logMaxBytes?: number;
  uid?: number;
  gid?: number;
  groups?: number[];
  nofileSoft?: number;
  forceGatedFork?: boolean;
}

export interface BindingExitInfo {
  code: number | null;
  signal: number | null;
  coreDumped: boolean;
  userCpuMicros: number;
  systemCpuMicros: number;
  exitedAtMs: number;
  logBytes: number;
  exitOps?: BindingFsOpsResult;
}

export interface BindingCloseInfo {
  logBytes: number;
  droppedBytes: number;
  truncated: boolean;
  writeError: string | null;
}

export interface BindingProcessHandle {
  readonly pid: number;
  readonly logBytes: number;
  readonly gatedFork: boolean;
  kill(signal: number): boolean;
  closeCapture(): void;
  watchOutput(on: boolean): void;
}

/** What the addon throws when a spawn fails: `stage` names the step, `code` the errno. */
export interface BindingSpawnErrorFields {
  code?: string;
  errno?: number;
  stage?: string;
  path?: string;
  /** stage "setup": the index of the setup op that failed. */
  setupIndex?: number;
}

export interface BindingFsOpsResult {
  /** Ops done; when `code` is set, the index of the op that failed. */
  completed: number;
  /** Per op: what a read returned; null for other ops and skipped optional ones. */
  reads: (string | null)[];
  code?: string;
  errno?: number;
  message?: string;
}

export type BindingListener = (type: string, info: Record<string, unknown>) => void;

export interface Binding {
  /** On the calling thread: returns once the child has exec'd (or throws why it could not). */
  spawn(options: BindingSpawnOptions, listener: BindingListener): BindingProcessHandle;
  /** The same on a libuv threadpool thread. */
  spawnAsync(options: BindingSpawnOptions, listener: BindingListener): Promise<BindingProcessHandle>;
  /** Runs filesystem ops in order on a libuv threadpool thread; stops at (and reports) the first failure. */
  fsOps(encodedOps: string): Promise<BindingFsOpsResult>;
  /** glibc malloc_trim(0): gives the allocator's free memory back to the kernel; true if any was. */
  trimNativeHeap(): boolean;
}

const addonPath = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'jobworker.node');

export const binding: Binding = require(addonPath) as Binding;
