// The cgroup v1 driver, for hybrid and legacy hosts. A job gets a directory in each v1 hierarchy it
// needs (cpu, memory, blkio, pids; on legacy hosts also cpuacct for usage and freezer for kill),
// joined by the child before exec. On hybrid hosts it also gets one in the controller-less
// unified hierarchy: the clone3 target, and the home of cgroup.kill, cgroup.freeze and
// cgroup.events, which v1 lacks.

import { JobworkerError } from '../../errors';
import { childPath, listChildren, type CgroupFs, type ControlFiles, type ControlWrite } from '../cgroup-fs';
import { CgroupOfJob, CgroupPlan, limitsInForce, type JobCgroupParts, type JobDirPlan } from '../job-cgroup';
import { checkJobId, isJobId } from '../job-id';
import { prepareLimits } from '../job-limits';
import type { JobProcesses } from '../job-processes';
import type { ResolvedLimits } from '../limits';
import type { CgroupDriver, CgroupStats, JobCgroup, JobCgroupPlan, Limits, ResourceController } from '../types';
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

export class V1Driver implements CgroupDriver {
  readonly mode: 'hybrid' | 'legacy';
  readonly jobsRoot: string;
  readonly controllers: ReadonlySet<ResourceController>;
  readonly #v1JobsDirs: string[];

  constructor(
    readonly fs: CgroupFs,
    private readonly layout: V1Layout,
    private readonly sysRoot: string | undefined,
    private readonly releaseRoots: () => Promise<void>,
  ) {
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

  async plan(id: string, limits: Limits, cwd: string): Promise<JobCgroupPlan> {
    checkJobId(id);
    const resolved = await prepareLimits(limits, cwd, this.controllers, this.sysRoot);
    return new CgroupPlan(this.parts(id, v1Writes(this.layout, resolved)), limitsInForce(limits, resolved));
  }

  /** Ids with a directory in any hierarchy: a crash half-way through create() leaves some. */
  async listJobIds(): Promise<string[]> {
    const ids = new Set<string>();
    for (const jobsDir of this.allJobsDirs()) {
      for (const name of await listChildren(this.fs, jobsDir)) if (isJobId(name)) ids.add(name);
    }
    return [...ids].sort();
  }

  async open(id: string): Promise<JobCgroup | undefined> {
    checkJobId(id);
    for (const jobsDir of this.allJobsDirs()) {
      if ((await listChildren(this.fs, jobsDir)).includes(id)) return new CgroupOfJob(this.parts(id, new Map()));
    }
    return undefined;
  }

  releaseRoot(): Promise<void> {
    return this.releaseRoots();
  }

  private allJobsDirs(): string[] {
    return this.layout.unified === undefined ? this.#v1JobsDirs : [this.layout.unified, ...this.#v1JobsDirs];
  }

  /** The job's directories (unified first, where there is one) with `writes` per v1 jobs directory. */
  private parts(id: string, writes: ReadonlyMap<string, ControlWrite[]>): JobCgroupParts {
    const { layout, fs } = this;
    const at = (jobsDir: string | undefined): string | undefined => (jobsDir === undefined ? undefined : childPath(jobsDir, id));
    const unified = at(layout.unified);
    const joins = this.#v1JobsDirs.map((jobsDir) => childPath(jobsDir, id));
    const dirs: JobDirPlan[] = this.#v1JobsDirs.map((jobsDir) => ({ dir: childPath(jobsDir, id), writes: writes.get(jobsDir) ?? [] }));
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
      placement: { ...(unified === undefined ? {} : { cgroupPath: unified }), joinProcsPaths: joins.map((dir) => childPath(dir, 'cgroup.procs')) },
      populated: unified !== undefined ? { kind: 'events', file: childPath(unified, 'cgroup.events') } : { kind: 'procs', file: childPath(freezer!, 'cgroup.procs') },
      statFiles: v1StatFiles(statsDirs),
      readStats: (files) => readV1Stats(files, statsDirs),
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
  return {
    ...usage,
    ...(dirs.cpu === undefined ? { cpuThrottledPeriods: 0, cpuThrottledMicros: 0 } : cpuThrottling.parse(files, dirs.cpu)),
    ...(dirs.memory === undefined ? { memoryCurrentBytes: 0, memoryPeakBytes: null, oomKills: 0 } : memoryStats.parse(files, dirs.memory)),
    pidsCurrent: dirs.pids === undefined ? 0 : pidsStats.parse(files, dirs.pids),
    io: dirs.blkio === undefined ? [] : blkioStats.parse(files, dirs.blkio),
  };
}
