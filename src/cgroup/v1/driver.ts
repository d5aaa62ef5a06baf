// The cgroup v1 driver, for hybrid and legacy hosts. A job gets a directory in each v1 hierarchy it
// needs (cpu, memory, blkio, pids; on legacy hosts also cpuacct for usage and freezer for kill),
// joined by the child before exec. On hybrid hosts it also gets one in the controller-less
// unified hierarchy: the clone3 target, and the home of cgroup.kill, cgroup.freeze and
// cgroup.events, which v1 lacks.

import { JobworkerError } from '../../errors';
import { resourceStats } from '../../resource-stats';
import { childPath, quotaAfterStart, type CgroupFs, type ControlFiles, type ControlWrite } from '../cgroup-fs';
import type { JobCgroupParts, JobDirPlan } from '../job-cgroup';
import type { JobProcesses } from '../job-processes';
import type { ResolvedLimits } from '../limits';
import { SlicedDriver, type SliceLimitsOf } from '../sliced-driver';
import type { CgroupStats, ResourceController } from '../types';
import { UnifiedProcesses } from '../unified-processes';
import { cpuStats } from '../v2/cpu';
import { blkioStats, blkioWrites } from './blkio';
import { cpuThrottling, cpuWrites } from './cpu';
import { cpuUsage } from './cpuacct';
import { FreezerProcesses } from './freezer';
import { memoryStats, memoryWrites } from './memory';
import { pidsStats, pidsWrites } from './pids';

/** The jobs directory (<base>/jobs) in each hierarchy the driver uses; co-mounted controllers share one. */
export interface V1Layout {
  mode: 'hybrid' | 'legacy';
  /** In the cgroup2 hierarchy (hybrid hosts only). */
  unified?: string;
  cpu?: string;
  /** Only where there is no unified cpu.stat to read usage from (legacy). */
  cpuacct?: string;
  memory?: string;
  blkio?: string;
  pids?: string;
  /** Legacy hosts only: the way to freeze and kill without cgroup.kill. */
  freezer?: string;
  /** Whether the memory hierarchy has memory.memsw.* (swap accounting); unknown if absent. */
  memorySwapAccounting?: boolean;
}

export function layoutControllers(layout: V1Layout): Set<ResourceController> {
  const controllers = new Set<ResourceController>();
  if (layout.cpu !== undefined) controllers.add('cpu');
  if (layout.memory !== undefined) controllers.add('memory');
  if (layout.blkio !== undefined) controllers.add('io');
  if (layout.pids !== undefined) controllers.add('pids');
  return controllers;
}

/** The distinct v1 jobs directories (co-mounted controllers share one), in a fixed order. */
export function v1JobsDirs(layout: V1Layout): string[] {
  const dirs = [layout.cpu, layout.cpuacct, layout.memory, layout.blkio, layout.pids, layout.freezer];
  return [...new Set(dirs.filter((dir): dir is string => dir !== undefined))];
}

/** Each v1 jobs directory with the writes it gets; co-mounted hierarchies merge. Pure. */
export function v1Writes(layout: V1Layout, limits: ResolvedLimits): Map<string, ControlWrite[]> {
  const writes = new Map<string, ControlWrite[]>(v1JobsDirs(layout).map((dir) => [dir, []]));
  const add = (dir: string | undefined, more: ControlWrite[]): void => {
    if (dir !== undefined) writes.get(dir)!.push(...more);
  };
  add(layout.cpu, cpuWrites(limits));
  add(layout.memory, memoryWrites(limits, layout.memorySwapAccounting));
  add(layout.blkio, blkioWrites(limits));
  add(layout.pids, pidsWrites(limits));
  return writes;
}

/**
 * An identity's slice in each v1 hierarchy: the limits all its jobs share (v1 limits are
 * hierarchical: a parent's memory, pids, CFS quota and blkio throttle bound its children). Pure.
 */
export function v1SliceWrites(layout: V1Layout, limits: ResolvedLimits): Map<string, ControlWrite[]> {
  const writes = v1Writes(layout, limits);
  // Children count in the slice's memory only in hierarchical mode: the default (and the only mode)
  // on kernels since 5.x; older ones accept it on a cgroup without children. First, before any child.
  if (layout.memory !== undefined) writes.get(layout.memory)!.unshift({ file: 'memory.use_hierarchy', value: '1', optional: true });
  return writes;
}

export class V1Driver extends SlicedDriver<ReadonlyMap<string, ControlWrite[]>> {
  readonly mode: 'hybrid' | 'legacy';
  readonly jobsRoot: string;
  readonly controllers: ReadonlySet<ResourceController>;
  readonly #v1JobsDirs: string[];

  constructor(
    fs: CgroupFs,
    private readonly layout: V1Layout,
    sysRoot: string | undefined,
    sliceLimits: SliceLimitsOf,
    private readonly root: { release(): Promise<void>; unlock(): void },
  ) {
    super(fs, sysRoot, sliceLimits);
    this.mode = layout.mode;
    const primary = layout.mode === 'hybrid' ? layout.unified : layout.freezer;
    if (primary === undefined) {
      throw new JobworkerError(
        'failed-precondition',
        layout.mode === 'hybrid'
          ? 'hybrid cgroup host without a unified hierarchy'
          : 'cgroup v1 host without a freezer hierarchy: jobs could not be killed reliably (their daemons would escape)',
      );
    }
    this.jobsRoot = primary;
    this.controllers = layoutControllers(layout);
    this.#v1JobsDirs = v1JobsDirs(layout);
  }

  async releaseRoot(): Promise<void> {
    await this.checkNoJobs();
    await this.removeAllSlices();
    await this.root.release();
  }

  close(): void {
    this.root.unlock();
  }

  protected jobWrites(limits: ResolvedLimits): ReadonlyMap<string, ControlWrite[]> {
    return new Map([...v1Writes(this.layout, limits)].map(([dir, writes]) => [dir, quotaAfterStart(writes)]));
  }

  protected sliceWrites(limits: ResolvedLimits): ReadonlyMap<string, ControlWrite[]> {
    return v1SliceWrites(this.layout, limits);
  }

  protected jobsDirs(): readonly string[] {
    return this.layout.unified === undefined ? this.#v1JobsDirs : [this.layout.unified, ...this.#v1JobsDirs];
  }

  /** The directories at `rel` (unified first, where there is one) with `writes` per v1 jobs directory. */
  protected partsAt(rel: string, id: string, writes: ReadonlyMap<string, ControlWrite[]> = new Map()): JobCgroupParts {
    const { layout, fs } = this;
    const at = (jobsDir: string | undefined): string | undefined => (jobsDir === undefined ? undefined : childPath(jobsDir, rel));
    const unified = at(layout.unified);
    const joins = this.#v1JobsDirs.map((jobsDir) => childPath(jobsDir, rel));
    const dirs: JobDirPlan[] = this.#v1JobsDirs.map((jobsDir) => ({ dir: childPath(jobsDir, rel), writes: writes.get(jobsDir) ?? [] }));
    if (unified !== undefined) dirs.unshift({ dir: unified, writes: [] });
    const freezer = at(layout.freezer);
    const processes: JobProcesses = unified !== undefined ? new UnifiedProcesses(fs, unified) : new FreezerProcesses(fs, freezer!);
    const statsDirs: V1StatsDirs = {
      unified,
      cpu: at(layout.cpu),
      cpuacct: at(layout.cpuacct),
      memory: at(layout.memory),
      blkio: at(layout.blkio),
      pids: at(layout.pids),
    };
    return {
      id,
      path: unified ?? freezer!,
      fs,
      processes,
      dirs,
      placement: { cgroupPath: unified, joinTasksPaths: joins.map((dir) => childPath(dir, 'tasks')) },
      populated: unified !== undefined ? { kind: 'events', file: childPath(unified, 'cgroup.events') } : { kind: 'procs', file: childPath(freezer!, 'cgroup.procs') },
      ...v1StatsReader(statsDirs),
    };
  }
}

export interface V1StatsDirs {
  unified?: string | undefined;
  cpu?: string | undefined;
  cpuacct?: string | undefined;
  memory?: string | undefined;
  blkio?: string | undefined;
  pids?: string | undefined;
}

/**
 * The stats functions of a job's parts, made here rather than in partsAt(): closures made there would
 * share its context, and so keep its limit writes alive as long as the job runs.
 */
function v1StatsReader(statsDirs: V1StatsDirs): Pick<JobCgroupParts, 'statFiles' | 'readStats'> {
  return { statFiles: () => v1StatFiles(statsDirs), readStats: (files) => readV1Stats(files, statsDirs) };
}

/** Every file readV1Stats() reads for these directories. */
export function v1StatFiles(dirs: V1StatsDirs): string[] {
  const files: string[] = [];
  const add = (dir: string | undefined, part: { files: readonly string[] }): void => {
    if (dir !== undefined) for (const name of part.files) files.push(childPath(dir, name));
  };
  // Usage from the unified cpu.stat where there is one (it needs no controller), else cpuacct.
  if (dirs.unified !== undefined) add(dirs.unified, cpuStats);
  else add(dirs.cpuacct, cpuUsage);
  add(dirs.cpu, cpuThrottling);
  add(dirs.memory, memoryStats);
  add(dirs.pids, pidsStats);
  add(dirs.blkio, blkioStats);
  return files;
}

export function readV1Stats(files: ControlFiles, dirs: V1StatsDirs): CgroupStats {
  let usage = { cpuUsageMicros: 0, cpuUserMicros: 0, cpuSystemMicros: 0 };
  if (dirs.unified !== undefined) {
    const { cpuUsageMicros, cpuUserMicros, cpuSystemMicros } = cpuStats.parse(files, dirs.unified);
    usage = { cpuUsageMicros, cpuUserMicros, cpuSystemMicros };
  } else if (dirs.cpuacct !== undefined) {
    usage = cpuUsage.parse(files, dirs.cpuacct);
  }
  const throttling = dirs.cpu === undefined ? { cpuThrottledPeriods: 0, cpuThrottledMicros: 0 } : cpuThrottling.parse(files, dirs.cpu);
  const memory = dirs.memory === undefined ? { memoryCurrentBytes: 0, memoryPeakBytes: null, oomKills: 0 } : memoryStats.parse(files, dirs.memory);
  return resourceStats(usage, throttling, memory, dirs.pids === undefined ? 0 : pidsStats.parse(files, dirs.pids), dirs.blkio === undefined ? [] : blkioStats.parse(files, dirs.blkio));
}
