// The cgroup v2 driver (unified hosts): one directory per job, <base>/jobs/<slice>/<id>, holding the
// limits, the stats, the processes (born into it through clone3) and cgroup.kill; one per identity
// (its slice) holding the limits all its jobs share.
import { resourceStats } from '../../resource-stats';
import { childPath, quotaAfterStart, type CgroupFs, type ControlFiles, type ControlWrite, type StatsPart } from '../cgroup-fs';
import type { V2Root } from '../delegation';
import type { JobCgroupParts } from '../job-cgroup';
import { RESOURCE_CONTROLLERS } from '../job-limits';
import type { ResolvedLimits } from '../limits';
import { SlicedDriver, type SliceLimitsOf } from '../sliced-driver';
import type { CgroupStats, ResourceController } from '../types';
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

/**
 * An identity's slice: its jobs get every controller (cgroup.subtree_control), the slice the limits
 * all its jobs share; no memory.oom.group (an OOM in the slice kills one job, by that job's own
 * oom.group, not all of them). Pure.
 */
export function v2SliceWrites(limits: ResolvedLimits, controllers: ReadonlySet<ResourceController>): ControlWrite[] {
  const enable = RESOURCE_CONTROLLERS.filter((controller) => controllers.has(controller));
  return [
    ...(enable.length === 0 ? [] : [{ file: 'cgroup.subtree_control', value: enable.map((c) => `+${c}`).join(' ') }]),
    ...(controllers.has('cpu') ? cpuWrites(limits) : []),
    ...(controllers.has('memory') ? memoryWrites(limits, false) : []),
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
  const cpu = cpuStats.parse(files, dir);
  const memory = controllers.has('memory') ? memoryStats.parse(files, dir) : { memoryCurrentBytes: 0, memoryPeakBytes: null, oomKills: 0 };
  return resourceStats(cpu, cpu, memory, controllers.has('pids') ? pidsStats.parse(files, dir) : 0, controllers.has('io') ? ioStats.parse(files, dir) : []);
}

export class V2Driver extends SlicedDriver<ControlWrite[]> {
  readonly mode = 'unified' as const;
  readonly jobsRoot: string;
  readonly controllers: ReadonlySet<ResourceController>;

  constructor(
    fs: CgroupFs,
    private readonly root: V2Root,
    sysRoot: string | undefined,
    sliceLimits: SliceLimitsOf,
  ) {
    super(fs, sysRoot, sliceLimits);
    this.jobsRoot = root.jobsDir;
    this.controllers = root.controllers;
  }

  /** Undoes the root set-up (the daemon leaf, controllers we enabled) once no job cgroup is left. */
  async releaseRoot(): Promise<void> {
    await this.checkNoJobs();
    await this.removeAllSlices();
    await this.root.release();
  }

  /** Lets go of the root's owner lock (the cgroups stay). */
  close(): void {
    this.root.unlock();
  }

  protected jobWrites(limits: ResolvedLimits): ControlWrite[] {
    return quotaAfterStart(v2Writes(limits, this.controllers));
  }

  protected sliceWrites(limits: ResolvedLimits): ControlWrite[] {
    return v2SliceWrites(limits, this.controllers);
  }

  protected jobsDirs(): readonly string[] {
    return [this.jobsRoot];
  }

  protected partsAt(rel: string, id: string, writes: ControlWrite[] = []): JobCgroupParts {
    const dir = childPath(this.jobsRoot, rel);
    return {
      id,
      path: dir,
      fs: this.fs,
      processes: new UnifiedProcesses(this.fs, dir),
      dirs: [{ dir, writes }],
      placement: { cgroupPath: dir, joinTasksPaths: [] },
      populated: { kind: 'events', file: childPath(dir, 'cgroup.events') },
      statFiles: () => v2StatFiles(dir, this.controllers),
      readStats: (files) => readV2Stats(files, dir, this.controllers),
    };
  }
}
