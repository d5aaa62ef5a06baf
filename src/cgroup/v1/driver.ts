// The cgroup v1 driver, for hybrid and legacy hosts. A job gets a directory in each v1 hierarchy it
// needs (cpu, memory, blkio, pids; on legacy hosts also cpuacct for usage and freezer for kill),
// joined by the child before exec. On hybrid hosts it also gets one in the controller-less
// unified hierarchy: the clone3 target, and the home of cgroup.kill, cgroup.freeze and
// cgroup.events, which v1 lacks.

import { JobworkerError } from '../../errors';
import { childPath, listChildren, readControl, type CgroupFs, type ControlWrite } from '../cgroup-fs';
import { CgroupOfJob, createOpsOf, creationError, runCreateOps, type JobDirPlan } from '../job-cgroup';
import { checkJobId, isJobId } from '../job-id';
import { prepareLimits } from '../job-limits';
import type { JobProcesses } from '../job-processes';
import type { ResolvedLimits } from '../limits';
import type { CgroupDriver, CgroupStats, JobCgroup, Limits, PlannedJobCgroup, ResourceController } from '../types';
import { UnifiedProcesses } from '../unified-processes';
import { parseCpuStat } from '../v2/cpu';
import { blkioWrites, readBlkioStats } from './blkio';
import { cpuWrites, readCpuThrottling } from './cpu';
import { readCpuUsage } from './cpuacct';
import { FreezerProcesses } from './freezer';
import { memoryWrites, readMemoryStats } from './memory';
import { pidsWrites, readPidsCurrent } from './pids';

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
    private readonly fs: CgroupFs,
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
    const dirs: JobDirPlan[] = [];
    if (this.layout.unified !== undefined) dirs.push({ dir: childPath(this.layout.unified, id), writes: [] });
    for (const [jobsDir, writes] of v1Writes(this.layout, resolved)) dirs.push({ dir: childPath(jobsDir, id), writes });
    const createOps = createOpsOf(dirs);
    return { createOps, cgroup: this.handle(id), creationError: (index, cause) => creationError(id, createOps, index, cause) };
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
      if ((await listChildren(this.fs, jobsDir)).includes(id)) return this.handle(id);
    }
    return undefined;
  }

  releaseRoot(): Promise<void> {
    return this.releaseRoots();
  }

  private allJobsDirs(): string[] {
    return this.layout.unified === undefined ? this.#v1JobsDirs : [this.layout.unified, ...this.#v1JobsDirs];
  }

  private handle(id: string): JobCgroup {
    const { layout, fs } = this;
    const at = (jobsDir: string | undefined): string | undefined => (jobsDir === undefined ? undefined : childPath(jobsDir, id));
    const unified = at(layout.unified);
    const joins = this.#v1JobsDirs.map((jobsDir) => childPath(jobsDir, id));
    const processes: JobProcesses =
      unified !== undefined ? new UnifiedProcesses(fs, unified) : new FreezerProcesses(fs, at(layout.freezer)!);
    const dirs = unified === undefined ? joins : [...joins, unified];
    const stats = {
      unified,
      cpu: at(layout.cpu),
      cpuacct: at(layout.cpuacct),
      memory: at(layout.memory),
      blkio: at(layout.blkio),
      pids: at(layout.pids),
    };
    return new CgroupOfJob({
      id,
      path: unified ?? at(layout.freezer)!,
      fs,
      processes,
      ...(unified === undefined ? {} : { bornInto: unified }),
      joins,
      dirs,
      ...(unified === undefined ? {} : { eventsFile: childPath(unified, 'cgroup.events') }),
      statFiles: v1StatFiles(stats),
      readStats: (prefetched) => readV1Stats(prefetched, stats),
    });
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

/** Every file readV1Stats() reads for these directories (so they can be read in one batch first). */
export function v1StatFiles(dirs: V1StatsDirs): string[] {
  const files: string[] = [];
  const add = (dir: string | undefined, ...names: string[]): void => {
    if (dir !== undefined) for (const name of names) files.push(childPath(dir, name));
  };
  if (dirs.unified !== undefined) add(dirs.unified, 'cpu.stat');
  else add(dirs.cpuacct, 'cpuacct.usage', 'cpuacct.usage_user', 'cpuacct.usage_sys');
  add(dirs.cpu, 'cpu.stat');
  add(dirs.memory, 'memory.oom_control', 'memory.usage_in_bytes', 'memory.max_usage_in_bytes');
  add(dirs.pids, 'pids.current');
  add(dirs.blkio, 'blkio.throttle.io_service_bytes', 'blkio.throttle.io_serviced');
  return files;
}

export async function readV1Stats(fs: CgroupFs, dirs: V1StatsDirs): Promise<CgroupStats> {
  // Usage from the unified cpu.stat where there is one (it needs no controller), else cpuacct.
  let usage = { cpuUsageMicros: 0, cpuUserMicros: 0, cpuSystemMicros: 0 };
  if (dirs.unified !== undefined) {
    const { cpuUsageMicros, cpuUserMicros, cpuSystemMicros } = parseCpuStat(await readControl(fs, dirs.unified, 'cpu.stat'));
    usage = { cpuUsageMicros, cpuUserMicros, cpuSystemMicros };
  } else if (dirs.cpuacct !== undefined) {
    usage = await readCpuUsage(fs, dirs.cpuacct);
  }
  return {
    ...usage,
    ...(dirs.cpu === undefined ? { cpuThrottledPeriods: 0, cpuThrottledMicros: 0 } : await readCpuThrottling(fs, dirs.cpu)),
    ...(dirs.memory === undefined ? { memoryCurrentBytes: 0, memoryPeakBytes: null, oomKills: 0 } : await readMemoryStats(fs, dirs.memory)),
    pidsCurrent: dirs.pids === undefined ? 0 : await readPidsCurrent(fs, dirs.pids),
    io: dirs.blkio === undefined ? [] : await readBlkioStats(fs, dirs.blkio),
  };
}
