// The cgroup v2 driver (unified hosts): one directory per job, <base>/jobs/<id>, holding the limits,
// the stats, the processes (born into it through clone3) and cgroup.kill.
import * as path from 'node:path';

import { errorCode } from '../../errors';
import { cgroupFsError, childPath, listChildren, type CgroupFs, type ControlWrite } from '../cgroup-fs';
import type { V2Root } from '../delegation';
import { CgroupOfJob, createOpsOf, creationError, runCreateOps } from '../job-cgroup';
import { checkJobId, isJobId } from '../job-id';
import { prepareLimits } from '../job-limits';
import type { ResolvedLimits } from '../limits';
import type { CgroupDriver, CgroupStats, JobCgroup, Limits, PlannedJobCgroup, ResourceController } from '../types';
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

/** Every file readV2Stats() reads (so they can be read in one batch first). */
export function v2StatFiles(dir: string, controllers: ReadonlySet<ResourceController>): string[] {
  const names = ['cpu.stat'];
  if (controllers.has('memory')) names.push('memory.current', 'memory.peak', 'memory.events');
  if (controllers.has('pids')) names.push('pids.current');
  if (controllers.has('io')) names.push('io.stat');
  return names.map((name) => childPath(dir, name));
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
    const planned = await this.plan(id, limits, cwd);
    await runCreateOps(this.fs, id, planned.createOps);
    return planned.cgroup;
  }

  async plan(id: string, limits: Limits, cwd: string): Promise<PlannedJobCgroup> {
    checkJobId(id);
    const resolved = await prepareLimits(limits, cwd, this.controllers, this.sysRoot);
    const createOps = createOpsOf([{ dir: childPath(this.jobsRoot, id), writes: v2Writes(resolved, this.controllers) }]);
    return { createOps, cgroup: this.handle(id), creationError: (index, cause) => creationError(id, createOps, index, cause) };
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
    const dir = childPath(this.jobsRoot, id);
    return new CgroupOfJob({
      id,
      path: dir,
      fs: this.fs,
      processes: new UnifiedProcesses(this.fs, dir),
      bornInto: dir,
      joins: [],
      dirs: [dir],
      eventsFile: childPath(dir, 'cgroup.events'),
      statFiles: v2StatFiles(dir, this.controllers),
      readStats: (prefetched) => readV2Stats(prefetched, dir, this.controllers),
    });
  }
}
