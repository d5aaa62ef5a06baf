// One job's cgroup(s), whatever the host: the drivers build it from a JobProcesses (how to see and
// kill the processes), the directories to remove and the files a spawn must open.
import { closeSync, constants, openSync } from 'node:fs';
import * as path from 'node:path';

import { JobworkerError, systemError } from '../errors';
import { removeCgroup, type CgroupFs } from './cgroup-fs';
import { signalPid, type JobProcesses } from './job-processes';
import type { CgroupStats, JobCgroup, SpawnPlacement } from './types';

/** How long destroy() waits for killed processes to go (only a task stuck in the kernel takes long). */
export const DESTROY_WAIT_MS = 10_000;

export interface JobCgroupParts {
  id: string;
  /** The directory that holds the job's processes for placement, events and kill. */
  path: string;
  fs: CgroupFs;
  processes: JobProcesses;
  /** cgroup2 directory the process is born into (absent on legacy hosts). */
  bornInto?: string;
  /** v1 directories the child joins before exec (their cgroup.procs). */
  joins: string[];
  /** Every directory of the job, in the order they are removed. */
  dirs: string[];
  readStats(): Promise<CgroupStats>;
}

export class CgroupOfJob implements JobCgroup {
  readonly id: string;
  readonly path: string;
  #parts: JobCgroupParts;
  #destroying: Promise<void> | undefined;

  constructor(parts: JobCgroupParts) {
    this.id = parts.id;
    this.path = parts.path;
    this.#parts = parts;
  }

  openPlacement(): { placement: SpawnPlacement; release(): void } {
    const opened: number[] = [];
    const release = (): void => {
      for (const fd of opened.splice(0)) closeSync(fd);
    };
    const open = (file: string, flags: number): number => {
      try {
        const fd = openSync(file, flags);
        opened.push(fd);
        return fd;
      } catch (error) {
        release();
        throw systemError('open', file, error, 'internal');
      }
    };
    const { bornInto, joins } = this.#parts;
    const cgroupFd = bornInto === undefined ? undefined : open(bornInto, constants.O_RDONLY | constants.O_DIRECTORY);
    const joinProcsFds = joins.map((dir) => open(path.join(dir, 'cgroup.procs'), constants.O_WRONLY));
    const placement: SpawnPlacement = { joinProcsFds };
    if (cgroupFd !== undefined) placement.cgroupFd = cgroupFd;
    return { placement, release };
  }

  stats(): Promise<CgroupStats> {
    return this.#parts.readStats();
  }

  async signalAll(signal: NodeJS.Signals): Promise<number> {
    const { processes } = this.#parts;
    // Frozen processes cannot exit, so no pid we read can be reaped and reused before we signal it.
    // The signal is delivered when they thaw.
    await processes.freeze();
    try {
      let signalled = 0;
      for (const pid of await processes.list()) if (signalPid(pid, signal)) signalled++;
      return signalled;
    } finally {
      await processes.thaw();
    }
  }

  kill(): Promise<void> {
    return this.#parts.processes.killAll();
  }

  waitEmpty(timeoutMs: number): Promise<boolean> {
    return this.#parts.processes.waitEmpty(timeoutMs);
  }

  destroy(): Promise<void> {
    // Concurrent callers share one removal; after a failure, a later call tries again.
    this.#destroying ??= this.#destroy().finally(() => {
      this.#destroying = undefined;
    });
    return this.#destroying;
  }

  async #destroy(): Promise<void> {
    const { processes, fs, dirs } = this.#parts;
    if (await processes.populated()) await processes.killAll();
    if (!(await processes.waitEmpty(DESTROY_WAIT_MS))) {
      throw new JobworkerError(
        'unavailable',
        `job ${this.id}: processes still in ${this.path} ${DESTROY_WAIT_MS / 1000} s after kill (stuck in uninterruptible sleep?); not removed`,
      );
    }
    for (const dir of dirs) await removeCgroup(fs, dir);
  }
}
