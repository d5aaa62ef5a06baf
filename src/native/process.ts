// A typed face over the addon: spawn a process into a cgroup with its output captured to a log
// file, learn when it exited and when its capture closed, signal it through its pidfd.
import { constants } from 'node:os';

import { JobworkerError } from '../errors';
import {
  binding,
  type BindingEvent,
  type BindingListener,
  type BindingLogSummary,
  type BindingProcessHandle,
  type BindingSpawnOptions,
} from './binding';
import { execCandidates } from './exec-path';
import type { Isolation } from './isolation';
import { encodeFsOps, toFsOpsResult, type FsOp, type FsOpsResult } from './fs-ops';
import type { LogBudget } from './log-budget';
import { fromBinding, SpawnError } from './native-error';

export interface SpawnOptions {
  /** Program to run: a path, or a name looked up in `env.PATH` (or the default PATH). */
  command: string;
  args?: readonly string[];
  /** argv[0] seen by the program; defaults to `command`. */
  argv0?: string;
  /** The job's whole environment; nothing of the daemon's is inherited. */
  env?: Readonly<Record<string, string>>;
  /** The working directory; absent: this process's, or with `isolation`, `/`. */
  cwd?: string;
  /** A cgroup v2 directory fd: the process is born inside it. */
  cgroupFd?: number;
  /** v1 `tasks` fds (hybrid and legacy hosts) the child joins before exec, writing "0". */
  joinTasksFds?: readonly number[];
  /** The same placement by path: the addon opens the files off the JS thread (not with the fds). */
  cgroupPath?: string;
  joinTasksPaths?: readonly string[];
  /**
   * Filesystem ops (creating the job's cgroups, writing limits) run first, on the same threadpool trip.
   * If one fails, those done are undone (mkdirs removed) and the spawn rejects with a SpawnError of
   * stage "setup" whose `index` is the op.
   */
  setupOps?: readonly FsOp[];
  /**
   * Filesystem ops run once the process has exec'd (with isolation.pid, once its init has too), on
   * the same trip, before the spawn resolves: settings that must not apply to the spawn's own
   * processes, which share this process's memory until then. If one fails the process is killed and
   * reaped, and the spawn rejects with a SpawnError of stage "started-ops" whose `index` is the op.
   */
  startedOps?: readonly FsOp[];
  /**
   * How long the child may take from its clone to its exec (with isolation.pid: to the command's
   * exec) before it is killed and the spawn rejects with code ETIMEDOUT (stage "clone" or "init").
   * A process of the job's user can SIGSTOP the child after its uid switch; without a deadline the
   * spawning thread would wait for ever. Default 10 s.
   */
  startTimeoutMs?: number;
  /** Tests only: the child waits before its exec until killed, where a SIGSTOP would hold it. */
  holdBeforeExecForTest?: boolean;
  /**
   * Filesystem ops run as soon as the process has exited and its output is on disk (reading the
   * final stats, removing the cgroup), on a thread of their own: ExitInfo.exitOps says what they
   * did, and `exited` resolves only after they ran.
   */
  exitOps?: readonly FsOp[];
  logPath: string;
  /** An emptied file of ours to rename to logPath rather than allocating a new one (created if the rename fails). */
  logRecycleFrom?: string;
  /** Cap on the job's output kept in its log (docs/log-format.md); beyond it, a "truncated" marker. */
  logMaxBytes?: number;
  /**
   * The identity's log budget, shared with its other jobs: every byte appended after the file header
   * is charged to it, and output beyond what it grants is dropped like output beyond logMaxBytes (a
   * "truncated" marker with "reason":"identity-quota").
   */
  logBudget?: LogBudget;
  uid?: number;
  gid?: number;
  groups?: readonly number[];
  /** RLIMIT_NOFILE soft limit for the job (Node raises its own to the hard limit). */
  nofileSoft?: number;
  /**
   * Namespaces and mounts, no_new_privs, no capabilities for a uid other than 0: see Isolation.
   * Absent: the job runs in the daemon's namespaces with the daemon's view of the filesystem.
   */
  isolation?: Isolation;
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
  /** What SpawnOptions.exitOps did (absent when none were given); a failure is stage "exit-ops". */
  exitOps?: FsOpsResult;
}

/** What the log holds once capture has ended. */
export type CloseInfo = BindingLogSummary;

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
  /**
   * The process the handle watches and signals. With `isolation.pid` it is jobworker-init, PID 1 of
   * the job's namespace (this is its pid on the host): kill() reaches every process of the job
   * through it, and `exited` reports the command's own status.
   */
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
    const number = signalNumber(signal);
    try {
      return this.#handle.kill(number);
    } catch (error) {
      throw fromBinding(error);
    }
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

  constructor() {
    let resolveExit!: (info: ExitInfo) => void;
    let resolveClose!: (info: CloseInfo) => void;
    this.exited = new Promise((resolve) => (resolveExit = resolve));
    this.closed = new Promise((resolve) => (resolveClose = resolve));
    this.listener = (event) => {
      switch (event.type) {
        case 'output':
          this.output?.(event.logBytes);
          break;
        case 'exit':
          resolveExit(toExitInfo(event));
          break;
        case 'close':
          resolveClose({ logBytes: event.logBytes, droppedBytes: event.droppedBytes, truncated: event.truncated, writeError: event.writeError });
          break;
      }
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
    joinTasksFds: options.joinTasksFds ? [...options.joinTasksFds] : undefined,
    cgroupPath: options.cgroupPath,
    joinTasksPaths: options.joinTasksPaths ? [...options.joinTasksPaths] : undefined,
    setupOps: options.setupOps ? encodeFsOps(options.setupOps) : undefined,
    startedOps: options.startedOps && options.startedOps.length > 0 ? encodeFsOps(options.startedOps) : undefined,
    startTimeoutMs: options.startTimeoutMs,
    holdBeforeExecForTest: options.holdBeforeExecForTest,
    exitOps: options.exitOps ? encodeFsOps(options.exitOps) : undefined,
    logPath: options.logPath,
    logRecycleFrom: options.logRecycleFrom,
    logMaxBytes: options.logMaxBytes,
    logBudget: options.logBudget?.handle,
    uid: options.uid,
    gid: options.gid,
    groups: options.groups ? [...options.groups] : undefined,
    nofileSoft: options.nofileSoft,
    isolation: options.isolation,
    forceGatedFork: options.forceGatedFork,
  };
}

/** Spawns on this thread: returns once the child has exec'd; throws SpawnError if it could not. */
export function spawnProcess(options: SpawnOptions): NativeProcess {
  const events = new ProcessEvents();
  try {
    return new NativeProcess(binding.spawn(bindingOptions(options), events.listener), events);
  } catch (error) {
    throw fromBinding(error, SpawnError);
  }
}

/**
 * Spawns on a libuv threadpool thread, so this thread goes on while the child gets to exec.
 * Resolves once it has exec'd; rejects with SpawnError if it could not (nothing ran).
 */
export async function spawnProcessAsync(options: SpawnOptions): Promise<NativeProcess> {
  const events = new ProcessEvents();
  let handle: BindingProcessHandle;
  try {
    handle = await binding.spawnAsync(bindingOptions(options), events.listener);
  } catch (error) {
    throw fromBinding(error, SpawnError);
  }
  return new NativeProcess(handle, events);
}

function toExitInfo(event: Extract<BindingEvent, { type: 'exit' }>): ExitInfo {
  const exit: ExitInfo = {
    code: event.code,
    signal: event.signal === null ? null : signalName(event.signal),
    coreDumped: event.coreDumped,
    userCpuMicros: event.userCpuMicros,
    systemCpuMicros: event.systemCpuMicros,
    exitedAt: new Date(event.exitedAtMs),
    logBytes: event.logBytes,
  };
  if (event.exitOps !== undefined) exit.exitOps = toFsOpsResult(event.exitOps);
  return exit;
}
