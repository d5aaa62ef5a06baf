// A typed face over the addon: spawn a process into a cgroup with its output captured to a log
// file, learn when it exited and when its capture closed, signal it through its pidfd.
import { constants } from 'node:os';

import { JobworkerError, type ErrorKind } from '../errors';
import {
  binding,
  type BindingFsOpsResult,
  type BindingCloseInfo,
  type BindingExitInfo,
  type BindingListener,
  type BindingProcessHandle,
  type BindingSpawnErrorFields,
  type BindingSpawnOptions,
} from './binding';
import { execCandidates } from './exec-path';

/** One filesystem step run by the addon (fsOps(), SpawnOptions.setupOps/exitOps); `optional`: ENOENT skips it. */
export type FsOp =
  | { op: 'mkdir' | 'rmdir' | 'read'; path: string; optional?: boolean }
  | { op: 'write'; path: string; value: string; optional?: boolean }
  /** A new empty file (O_CREAT | O_EXCL, mode 0640): EEXIST if the path is taken. */
  | { op: 'create'; path: string; optional?: boolean };

/** What a list of FsOps did: `completed` done; `error` (errno name in `code`) stopped the next. */
export interface FsOpsResult {
  completed: number;
  /** Per op: what a read returned; null for other ops and for skipped optional reads. */
  reads: (string | null)[];
  error?: Error;
}

const OP_LETTERS = { mkdir: 'k', rmdir: 'd', write: 'w', read: 'r', create: 'c' } as const;

/** The ops as the addon takes them: one string, so that passing 30 ops costs one conversion. */
export function encodeFsOps(ops: readonly FsOp[]): string {
  let text = '';
  for (const op of ops) {
    if (op.path.includes('\0') || (op.op === 'write' && op.value.includes('\0'))) {
      throw new JobworkerError('invalid-argument', `fs op ${op.op} ${JSON.stringify(op.path)}: NUL byte`);
    }
    text += `${OP_LETTERS[op.op]}${op.optional === true ? '?' : '!'}${op.path}\0${op.op === 'write' ? op.value : ''}\0`;
  }
  return text;
}

/** The addon's report of a batch, with the failure (if any) as an Error naming the op. */
export function toOpsResult(ops: readonly FsOp[], result: BindingFsOpsResult): FsOpsResult {
  if (result.code === undefined) return { completed: result.completed, reads: result.reads };
  const op = ops[result.completed];
  const error = Object.assign(new Error(`${result.code}: ${result.message ?? 'failed'}, ${op?.op ?? 'op'} '${op?.path ?? '?'}'`), {
    code: result.code,
    errno: result.errno,
    syscall: op?.op,
    path: op?.path,
  });
  return { completed: result.completed, reads: result.reads, error };
}

export interface SpawnOptions {
  /** Program to run: a path, or a name looked up in `env.PATH` (or the default PATH). */
  command: string;
  args?: readonly string[];
  /** argv[0] seen by the program; defaults to `command`. */
  argv0?: string;
  /** The job's whole environment; nothing of the daemon's is inherited. */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /** A cgroup v2 directory fd: the process is born inside it. */
  cgroupFd?: number;
  /** v1 `cgroup.procs` fds (hybrid and legacy hosts) the child joins before exec. */
  joinProcsFds?: readonly number[];
  /** The same placement by path: the addon opens the files off the JS thread (not with the fds). */
  cgroupPath?: string;
  joinProcsPaths?: readonly string[];
  /**
   * Filesystem ops (creating the job's cgroups, writing limits) run first, on the same threadpool trip.
   * If one fails, those done are undone (mkdirs removed) and the spawn rejects with stage "setup".
   */
  setupOps?: readonly FsOp[];
  /**
   * Filesystem ops run on the capture thread as soon as the process has exited and its output is on
   * disk (reading the final stats, removing the cgroup): ExitInfo.exitOps says what they did.
   */
  exitOps?: readonly FsOp[];
  logPath: string;
  /** An emptied file of ours to rename to logPath rather than allocating a new one (created if the rename fails). */
  logRecycleFrom?: string;
  /** Cap on the log file; output beyond it is dropped after a "truncated" marker. */
  logMaxBytes?: number;
  uid?: number;
  gid?: number;
  groups?: readonly number[];
  /** RLIMIT_NOFILE soft limit for the job (Node raises its own to the hard limit). */
  nofileSoft?: number;
  /** Tests only: take the fallback (gated fork) path. */
  forceGatedFork?: boolean;
}

export interface ExitInfo {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  coreDumped: boolean;
  userCpuMicros: number;
  systemCpuMicros: number;
  exitedAt: Date;
  /** Log size once the pipes were read dry after the exit: everything the process wrote. */
  logBytes: number;
  /** What SpawnOptions.exitOps did (absent when none were given). */
  exitOps?: FsOpsResult;
}

export interface CloseInfo {
  logBytes: number;
  /** Output not kept: beyond the size cap, or lost to a failed write (see writeError). */
  droppedBytes: number;
  truncated: boolean;
  /** errno name of the first failed log write (e.g. ENOSPC), or null. */
  writeError: string | null;
}

export type SpawnStage =
  | 'setup'
  | 'log'
  | 'pipes'
  | 'clone'
  | 'cgroup'
  | 'session'
  | 'stdio'
  | 'rlimit'
  | 'credentials'
  | 'close-fds'
  | 'chdir'
  | 'exec';

/** The process never ran: `stage` says which step failed, `code` the errno name. */
export class SpawnError extends JobworkerError {
  constructor(
    message: string,
    readonly stage: SpawnStage,
    readonly code: string,
    readonly path: string | undefined,
    options?: { cause?: unknown; setupIndex?: number },
  ) {
    super(spawnErrorKind(stage, code), message, options);
    this.setupIndex = options?.setupIndex;
  }

  /** Stage "setup": which of SpawnOptions.setupOps failed. */
  readonly setupIndex: number | undefined;
}

// The request's fault (no such program, bad cwd) is an invalid argument; a busy host (or a full
// disk under the state directory: the log file cannot be created) is exhaustion.
function spawnErrorKind(stage: SpawnStage, code: string): ErrorKind {
  if (stage === 'exec' || stage === 'chdir' || stage === 'credentials') return 'invalid-argument';
  if (code === 'EAGAIN' || code === 'ENOMEM' || code === 'EMFILE' || code === 'ENFILE') return 'resource-exhausted';
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'resource-exhausted';
  return 'internal';
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

export function signalName(signal: number): NodeJS.Signals {
  return signalNames.get(signal) ?? (`SIG${signal}` as NodeJS.Signals);
}

export function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === 'number') return signal;
  const number = (constants.signals as Record<string, number | undefined>)[signal];
  if (number === undefined) throw new JobworkerError('invalid-argument', `unknown signal ${signal}`);
  return number;
}

export class NativeProcess {
  readonly pid: number;
  /** Created by the fallback path (clone3 unavailable), not clone3 into the cgroup. */
  readonly gatedFork: boolean;
  /** Resolves once the process has exited and all it wrote is in the log. */
  readonly exited: Promise<ExitInfo>;
  /** Resolves once capture has ended (no writer holds the pipes, or closeCapture()). */
  readonly closed: Promise<CloseInfo>;

  #handle: BindingProcessHandle;
  #events: ProcessEvents;

  /** @internal use spawnProcess() or spawnProcessAsync() */
  constructor(handle: BindingProcessHandle, events: ProcessEvents) {
    this.#handle = handle;
    this.#events = events;
    this.pid = handle.pid;
    this.gatedFork = handle.gatedFork;
    this.exited = events.exited;
    this.closed = events.closed;
  }

  /** Bytes of complete records in the log right now. */
  get logBytes(): number {
    return this.#handle.logBytes;
  }

  /** Signals the process through its pidfd. False if it has already exited (no pid reuse risk). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.#handle.kill(signalNumber(signal));
  }

  /** Ends capture: reads the pipes dry and closes them. For writers that outlive the cgroup. */
  closeCapture(): void {
    this.#handle.closeCapture();
  }

  /** Calls `listener` (coalesced) as the log grows; null stops the calls. */
  watchOutput(listener: ((logBytes: number) => void) | null): void {
    this.#events.output = listener;
    this.#handle.watchOutput(listener !== null);
  }
}

/** The addon's events for one process, turned into promises and a callback. */
class ProcessEvents {
  readonly exited: Promise<ExitInfo>;
  readonly closed: Promise<CloseInfo>;
  output: ((logBytes: number) => void) | null = null;
  readonly listener: BindingListener;

  constructor(exitOps: readonly FsOp[] | undefined) {
    let resolveExit!: (info: ExitInfo) => void;
    let resolveClose!: (info: CloseInfo) => void;
    this.exited = new Promise((resolve) => (resolveExit = resolve));
    this.closed = new Promise((resolve) => (resolveClose = resolve));
    this.listener = (type, info) => {
      if (type === 'output') this.output?.(info.logBytes as number);
      else if (type === 'exit') resolveExit(toExitInfo(info as unknown as BindingExitInfo, exitOps));
      else if (type === 'close') resolveClose({ ...(info as unknown as BindingCloseInfo) });
    };
  }
}

function bindingOptions(options: SpawnOptions): BindingSpawnOptions {
  const env = options.env ?? {};
  return {
    execCandidates: execCandidates(options.command, env.PATH),
    argv: [options.argv0 ?? options.command, ...(options.args ?? [])],
    env: Object.entries(env).map(([name, value]) => `${name}=${value}`),
    cwd: options.cwd,
    cgroupFd: options.cgroupFd,
    joinProcsFds: options.joinProcsFds ? [...options.joinProcsFds] : undefined,
    cgroupPath: options.cgroupPath,
    joinProcsPaths: options.joinProcsPaths ? [...options.joinProcsPaths] : undefined,
    setupOps: options.setupOps ? encodeFsOps(options.setupOps) : undefined,
    exitOps: options.exitOps ? encodeFsOps(options.exitOps) : undefined,
    logPath: options.logPath,
    logRecycleFrom: options.logRecycleFrom,
    logMaxBytes: options.logMaxBytes,
    uid: options.uid,
    gid: options.gid,
    groups: options.groups ? [...options.groups] : undefined,
    nofileSoft: options.nofileSoft,
    forceGatedFork: options.forceGatedFork,
  };
}

/** Spawns on this thread: returns once the child has exec'd; throws SpawnError if it could not. */
export function spawnProcess(options: SpawnOptions): NativeProcess {
  const events = new ProcessEvents(options.exitOps);
  try {
    return new NativeProcess(binding.spawn(bindingOptions(options), events.listener), events);
  } catch (error) {
    throw toSpawnError(error);
  }
}

/**
 * Spawns on a libuv threadpool thread, so this thread goes on while the child gets to exec.
 * Resolves once it has exec'd; rejects with SpawnError if it could not (nothing ran).
 */
export async function spawnProcessAsync(options: SpawnOptions): Promise<NativeProcess> {
  const events = new ProcessEvents(options.exitOps);
  let handle: BindingProcessHandle;
  try {
    handle = await binding.spawnAsync(bindingOptions(options), events.listener);
  } catch (error) {
    throw toSpawnError(error);
  }
  return new NativeProcess(handle, events);
}

function toExitInfo(info: BindingExitInfo, exitOps: readonly FsOp[] | undefined): ExitInfo {
  const exit: ExitInfo = {
    code: info.code,
    signal: info.signal === null ? null : signalName(info.signal),
    coreDumped: info.coreDumped,
    userCpuMicros: info.userCpuMicros,
    systemCpuMicros: info.systemCpuMicros,
    exitedAt: new Date(info.exitedAtMs),
    logBytes: info.logBytes,
  };
  if (info.exitOps !== undefined && exitOps !== undefined) exit.exitOps = toOpsResult(exitOps, info.exitOps);
  return exit;
}

function toSpawnError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const fields = error as Error & BindingSpawnErrorFields;
  if (fields.stage === undefined) return error;
  return new SpawnError(
    error.message,
    fields.stage as SpawnStage,
    fields.code ?? 'EUNKNOWN',
    fields.path,
    { cause: error, setupIndex: fields.setupIndex },
  );
}
