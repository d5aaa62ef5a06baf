// cgroup v2 memory controller: hard limit without swap, soft limit, and OOM kills the whole job.
import * as path from 'node:path';

import { parseFlatKeyed, parseSingleNumber, readControl, readOptionalControl, type CgroupFs, type ControlWrite } from '../cgroup-fs';
import type { ResolvedLimits } from '../limits';
import type { CgroupStats } from '../types';

export function memoryWrites(limits: ResolvedLimits): ControlWrite[] {
  const writes: ControlWrite[] = [];
  if (limits.memoryBytes !== undefined) {
    writes.push({ file: 'memory.max', value: String(limits.memoryBytes) });
    // Without this a job at its limit swaps instead of being stopped; absent when the kernel does
    // no swap accounting (then there is nothing to forbid).
    writes.push({ file: 'memory.swap.max', value: '0', optional: true });
  }
  if (limits.memoryHighBytes !== undefined) writes.push({ file: 'memory.high', value: String(limits.memoryHighBytes) });
  // An OOM kill takes the whole job, not one process of it: a job missing a process is worse than
  // a job that failed (kernel >= 4.19; older kernels kill one process).
  writes.push({ file: 'memory.oom.group', value: '1', optional: true });
  return writes;
}

export type MemoryStats = Pick<CgroupStats, 'memoryCurrentBytes' | 'memoryPeakBytes' | 'oomKills'>;

export async function readMemoryStats(fs: CgroupFs, dir: string): Promise<MemoryStats> {
  const current = await readControl(fs, dir, 'memory.current');
  const peak = await readOptionalControl(fs, dir, 'memory.peak'); // kernel >= 5.19
  const events = parseFlatKeyed(await readControl(fs, dir, 'memory.events'));
  return {
    memoryCurrentBytes: parseSingleNumber(current, path.join(dir, 'memory.current')),
    memoryPeakBytes: peak === undefined ? null : parseSingleNumber(peak, path.join(dir, 'memory.peak')),
    oomKills: events.get('oom_kill') ?? 0,
  };
}
