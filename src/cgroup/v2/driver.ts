// The cgroup v2 driver (unified hosts): one directory per job, <base>/jobs/<id>, holding the limits,
// the stats, the processes (born into it through clone3) and cgroup.kill.
import { errorCode } from '../../errors';
import { cgroupFsError, childPath, listChildren, type CgroupFs, type ControlFiles, type ControlWrite, type StatsPart } from '../cgroup-fs';
import type { V2Root } from '../delegation';
import { CgroupOfJob, CgroupPlan, limitsInForce, type JobCgroupParts } from '../job-cgroup';
import { checkJobId, isJobId } from '../job-id';
import { prepareLimits } from '../job-limits';
import type { ResolvedLimits } from '../limits';
import type { CgroupDriver, CgroupStats, JobCgroup, JobCgroupPlan, Limits, ResourceController } from '../types';
import { UnifiedProcesses } from '../unified-processes';
import { cpuStats, cpuWrites } from './cpu';
import { ioStats, ioWrites } from './io';
import { memoryStats, memoryWrites } from './memory';
import { pidsStats, pidsWrites } from './pids';

/** Every file the job's cgroup gets, for the controllers this host has. Pure. */
export function v2Writes(limits: ResolvedLimits, controllers: ReadonlySet<ResourceController>): ControlWrite[] {
  return [
    ...(controllers.has('cpu') ? cpuWrites(limits) : []),
    ...(controllers.has('memory') ? memoryWrites(limits) : []),
    ...(controllers.has('io') ? ioWrites(limits) : []),
    ...(controllers.has('pids') ? pidsWrites(limits) : []),
  ];
}

/** The parts of a v2 stats snapshot this host's controllers give (cpu.stat is there without a controller). */
function v2StatsParts(controllers: ReadonlySet<ResourceController>): StatsPart<unknown>[] {
  return [cpuStats, ...(controllers.has('memory') ? [memoryStats] : []), ...(controllers.has('pids') ? [pidsStats] : []), ...(controllers.has('io') ? [ioStats] : [])];
}

/** Every file readV2Stats() reads. */
export function v2StatFiles(dir: string, controllers: ReadonlySet<ResourceController>): string[] {
  return v2StatsParts(controllers).flatMap((part) => part.files.map((name) => childPath(dir, name)));
}

export function readV2Stats(files: ControlFiles, dir: string, controllers: ReadonlySet<ResourceController>): CgroupStats {
  return {
    ...cpuStats.parse(files, dir),
    ...(controllers.has('memory') ? memoryStats.parse(files, dir) : { memoryCurrentBytes: 0, memoryPeakBytes: null, oomKills: 0 }),
    pidsCurrent: controllers.has('pids') ? pidsStats.parse(files, dir) : 0,
    io: controllers.has('io') ? ioStats.parse(files, dir) : [],
  };
}

export class V2Driver implements CgroupDriver {
  readonly mode = 'unified' as const;
  readonly jobsRoot: string;
  readonly controllers: ReadonlySet<ResourceController>;

  constructor(
    readonly fs: CgroupFs,
    private readonly root: V2Root,
    private readonly sysRoot: string | undefined,
  ) {
    this.jobsRoot = root.jobsDir;
    this.controllers = root.controllers;
  }

  async plan(id: string, limits: Limits, cwd: string): Promise<JobCgroupPlan> {
    checkJobId(id);
    const resolved = await prepareLimits(limits, cwd, this.controllers, this.sysRoot);
    return new CgroupPlan(this.parts(id, v2Writes(resolved, this.controllers)), limitsInForce(limits, resolved));
  }

  async listJobIds(): Promise<string[]> {
    return (await listChildren(this.fs, this.jobsRoot)).filter(isJobId).sort();
  }

  async open(id: string): Promise<JobCgroup | undefined> {
    checkJobId(id);
    const events = childPath(childPath(this.jobsRoot, id), 'cgroup.events');
    try {
      await this.fs.read(events);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw cgroupFsError('read', events, error);
    }
    return new CgroupOfJob(this.parts(id, []));
  }

  /** Undoes the root set-up (the daemon leaf, controllers we enabled) once no job cgroup is left. */
  releaseRoot(): Promise<void> {
    return this.root.release();
  }

  private parts(id: string, writes: ControlWrite[]): JobCgroupParts {
    const dir = childPath(this.jobsRoot, id);
    return {
      id,
      path: dir,
      fs: this.fs,
      processes: new UnifiedProcesses(this.fs, dir),
      dirs: [{ dir, writes }],
      placement: { cgroupPath: dir, joinProcsPaths: [] },
      populated: { kind: 'events', file: childPath(dir, 'cgroup.events') },
      statFiles: v2StatFiles(dir, this.controllers),
      readStats: (files) => readV2Stats(files, dir, this.controllers),
    };
  }
}
