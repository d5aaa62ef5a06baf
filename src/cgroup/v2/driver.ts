// The cgroup v2 driver (unified hosts): one directory per job, <base>/jobs/<id>, holding the limits,
// the stats, the processes (born into it through clone3) and cgroup.kill.
import * as path from 'node:path';

import { errorCode, JobworkerError } from '../../errors';
import { cgroupFsError, listChildren, makeCgroup, removeCgroup, writeControls, type CgroupFs, type ControlWrite } from '../cgroup-fs';
import type { V2Root } from '../delegation';
import { CgroupOfJob } from '../job-cgroup';
import { checkJobId, isJobId } from '../job-id';
import { prepareLimits } from '../job-limits';
import type { ResolvedLimits } from '../limits';
import type { CgroupDriver, CgroupStats, JobCgroup, Limits, ResourceController } from '../types';
import { UnifiedProcesses } from '../unified-processes';
import { cpuWrites, readCpuStats } from './cpu';
import { ioWrites, readIoStats } from './io';
import { memoryWrites, readMemoryStats } from './memory';
import { pidsWrites, readPidsCurrent } from './pids';

/** Every file the job's cgroup gets, for the controllers this host has. Pure. */
export function v2Writes(limits: ResolvedLimits, controllers: ReadonlySet<ResourceController>): ControlWrite[] {
  return [
    ...(controllers.has('cpu') ? cpuWrites(limits) : []),
    ...(controllers.has('memory') ? memoryWrites(limits) : []),
    ...(controllers.has('io') ? ioWrites(limits) : []),
    ...(controllers.has('pids') ? pidsWrites(limits) : []),
  ];
}

export async function readV2Stats(fs: CgroupFs, dir: string, controllers: ReadonlySet<ResourceController>): Promise<CgroupStats> {
  return {
    ...(await readCpuStats(fs, dir)),
    ...(controllers.has('memory') ? await readMemoryStats(fs, dir) : { memoryCurrentBytes: 0, memoryPeakBytes: null, oomKills: 0 }),
    pidsCurrent: controllers.has('pids') ? await readPidsCurrent(fs, dir) : 0,
    io: controllers.has('io') ? await readIoStats(fs, dir) : [],
  };
}

export class V2Driver implements CgroupDriver {
  readonly mode = 'unified' as const;
  readonly jobsRoot: string;
  readonly controllers: ReadonlySet<ResourceController>;

  constructor(
    private readonly fs: CgroupFs,
    private readonly root: V2Root,
    private readonly sysRoot: string | undefined,
  ) {
    this.jobsRoot = root.jobsDir;
    this.controllers = root.controllers;
  }

  async validate(limits: Limits, cwd: string): Promise<void> {
    await prepareLimits(limits, cwd, this.controllers, this.sysRoot);
  }

  async create(id: string, limits: Limits, cwd: string): Promise<JobCgroup> {
    checkJobId(id);
    const resolved = await prepareLimits(limits, cwd, this.controllers, this.sysRoot);
    const dir = path.join(this.jobsRoot, id);
    try {
      await makeCgroup(this.fs, dir);
    } catch (error) {
      if (error instanceof JobworkerError && error.kind === 'already-exists') {
        throw new JobworkerError('already-exists', `a cgroup for job ${id} already exists at ${dir}`, { cause: error });
      }
      throw error;
    }
    try {
      await writeControls(this.fs, dir, v2Writes(resolved, this.controllers));
    } catch (error) {
      await removeCgroup(this.fs, dir).catch(() => undefined); // the write error is the one to report
      throw error;
    }
    return this.handle(id);
  }

  async listJobIds(): Promise<string[]> {
    return (await listChildren(this.fs, this.jobsRoot)).filter(isJobId).sort();
  }

  async open(id: string): Promise<JobCgroup | undefined> {
    checkJobId(id);
    try {
      await this.fs.read(path.join(this.jobsRoot, id, 'cgroup.events'));
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw cgroupFsError('read', path.join(this.jobsRoot, id, 'cgroup.events'), error);
    }
    return this.handle(id);
  }

  /** Undoes the root set-up (the daemon leaf, controllers we enabled) once no job cgroup is left. */
  releaseRoot(): Promise<void> {
    return this.root.release();
  }

  private handle(id: string): JobCgroup {
    const dir = path.join(this.jobsRoot, id);
    return new CgroupOfJob({
      id,
      path: dir,
      fs: this.fs,
      processes: new UnifiedProcesses(this.fs, dir),
      bornInto: dir,
      joins: [],
      dirs: [dir],
      readStats: () => readV2Stats(this.fs, dir, this.controllers),
    });
  }
}
