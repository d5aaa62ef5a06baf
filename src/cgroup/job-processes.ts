// The processes of one job, as a cgroup sees them: list, freeze, kill, wait until none is left.
// Two implementations: a cgroup2 directory (unified and hybrid hosts: cgroup.kill, cgroup.freeze,
// cgroup.events) and a v1 freezer cgroup (legacy hosts).
import * as path from 'node:path';

import { errorCode, systemError } from '../errors';
import { cgroupFsError, isCgroupGone, type CgroupFs } from './cgroup-fs';

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

/**
 * Kill without cgroup.kill: freeze (so nothing forks or exits while we look), SIGKILL each pid,
 * thaw (a v1-frozen task dies only once thawed); again until the list comes back empty.
 */
export async function freezeKillThaw(processes: Pick<JobProcesses, 'freeze' | 'thaw' | 'list'>): Promise<void> {
  for (let round = 0; round < KILL_ROUNDS; round++) {
    await processes.freeze();
    let pids: number[];
    try {
      pids = await processes.list();
      for (const pid of pids) signalPid(pid, 'SIGKILL');
    } finally {
      await processes.thaw();
    }
    if (pids.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
