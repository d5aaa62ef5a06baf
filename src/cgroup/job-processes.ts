// The processes of one job, as a cgroup sees them: list, freeze, kill, wait until none is left.
// Two implementations: a cgroup2 directory (unified and hybrid hosts: cgroup.kill, cgroup.freeze,
// cgroup.events) and a v1 freezer cgroup (legacy hosts).
import * as path from 'node:path';

import { errorCode, systemError } from '../errors';
import { cgroupFsError, isCgroupGone, type CgroupFs } from './cgroup-fs';
import type { PinnedSignaller } from './types';

export interface JobProcesses {
  /** Pids of every process in the job now. */
  list(): Promise<number[]>;
  /** True while any process (or zombie not yet released) is in the job. */
  populated(): Promise<boolean>;
  /** Stops every process so none can exit, fork or be replaced by another with its pid. False if not frozen (unsupported, or timed out). */
  freeze(): Promise<boolean>;
  thaw(): Promise<void>;
  /** SIGKILL to every process, including ones that daemonized. Does not wait for them to go. */
  killAll(): Promise<void>;
  /** True once no process is left; false after timeoutMs. */
  waitEmpty(timeoutMs: number): Promise<boolean>;
}

/** What both kinds share: the cgroup directory whose cgroup.procs lists the job's processes. */
export abstract class CgroupProcesses implements JobProcesses {
  constructor(
    protected readonly fs: CgroupFs,
    readonly dir: string,
  ) {}

  list(): Promise<number[]> {
    return listProcs(this.fs, this.dir);
  }

  abstract populated(): Promise<boolean>;
  abstract freeze(): Promise<boolean>;
  abstract thaw(): Promise<void>;
  abstract killAll(): Promise<void>;
  abstract waitEmpty(timeoutMs: number): Promise<boolean>;
}

/** Sends a signal to one pid; false if it no longer exists. */
export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ESRCH') return false;
    throw systemError(`send ${signal} to`, `pid ${pid}`, error);
  }
}

export function parsePids(text: string): number[] {
  return text.split('\n').filter((line) => line !== '').map(Number);
}

/** The pids in a cgroup's cgroup.procs (v1 or v2); none if the cgroup is gone. */
export async function listProcs(fs: CgroupFs, dir: string): Promise<number[]> {
  const file = path.join(dir, 'cgroup.procs');
  try {
    return parsePids(await fs.read(file));
  } catch (error) {
    if (isCgroupGone(error)) return [];
    throw cgroupFsError('read', file, error);
  }
}

const KILL_ROUNDS = 100;

/** By pid number: only until a process sets a better one (the Worker sets the addon's pidfds). */
const BY_NUMBER: PinnedSignaller = { pin: (pid) => pid, send: (pid, signal) => signalPid(pid, signal), release: () => undefined };
let killSignaller: PinnedSignaller = BY_NUMBER;

/** What signalAll and freezeKillThaw signal through, for the whole process; returns the one it replaces. */
export function useKillSignaller(signaller: PinnedSignaller): PinnedSignaller {
  const before = killSignaller;
  killSignaller = signaller;
  return before;
}

/**
 * Sends `signal` to every process the job lists, while the caller holds it frozen. A freeze can fail
 * (a task in uninterruptible sleep) and a frozen task can still die (SIGKILL, the OOM killer), its
 * pid free for another process: so each pid is pinned first, and signalled only if the job still
 * lists it after that (a pid listed again belongs to the pinned process or, if that one died, to
 * another process of the job). Returns the pids listed, and how many were signalled.
 */
export async function signalListed(processes: Pick<JobProcesses, 'list'>, signal: NodeJS.Signals): Promise<{ listed: number; signalled: number }> {
  const pinned = new Map<number, number>();
  try {
    const pids = await processes.list();
    for (const pid of pids) {
      const handle = killSignaller.pin(pid);
      if (handle !== null) pinned.set(pid, handle);
    }
    const stillListed = new Set(await processes.list());
    let signalled = 0;
    for (const [pid, handle] of pinned) if (stillListed.has(pid) && killSignaller.send(handle, signal)) signalled++;
    return { listed: pids.length, signalled };
  } finally {
    for (const handle of pinned.values()) killSignaller.release(handle);
  }
}

/**
 * Kill without cgroup.kill (v1-only hosts, kernels before 5.14): freeze (so nothing forks or exits
 * while we look), SIGKILL each pid, thaw (a v1-frozen task dies only once thawed); again until the
 * list comes back empty.
 */
export async function freezeKillThaw(processes: Pick<JobProcesses, 'freeze' | 'thaw' | 'list'>): Promise<void> {
  for (let round = 0; round < KILL_ROUNDS; round++) {
    await processes.freeze();
    let listed: number;
    try {
      ({ listed } = await signalListed(processes, 'SIGKILL'));
    } finally {
      await processes.thaw();
    }
    if (listed === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
