// cgroup v1 memory controller: hard limit (and memory+swap, where swap accounting is on), soft limit;
// usage, peak and the OOM kill counter.
import * as path from 'node:path';

import { parseFlatKeyed, parseSingleNumber, readControl, type CgroupFs, type ControlWrite } from '../cgroup-fs';
import type { ResolvedLimits } from '../limits';
import type { CgroupStats } from '../types';

/**
 * `swapAccounting`: whether the kernel has memory.memsw.* (swapaccount=1), when known; unknown
 * writes both the memsw limit and swappiness, each skipped where the file is missing.
 */
export function memoryWrites(limits: ResolvedLimits, swapAccounting?: boolean): ControlWrite[] {
  const writes: ControlWrite[] = [];
  if (limits.memoryBytes !== undefined) {
    const bytes = String(limits.memoryBytes);
    // limit_in_bytes first: the kernel refuses a memsw limit below the memory limit.
    writes.push({ file: 'memory.limit_in_bytes', value: bytes });
    // memory+swap = memory: no swap. The file exists only with swap accounting (swapaccount=1).
    if (swapAccounting !== false) writes.push({ file: 'memory.memsw.limit_in_bytes', value: bytes, optional: swapAccounting === undefined });
    // Where memsw is missing, this at least keeps the job's pages out of swap.
    if (swapAccounting !== true) writes.push({ file: 'memory.swappiness', value: '0', optional: true });
  }
  // v1 has no memory.high; the soft limit is the nearest: reclaimed first under memory pressure.
  if (limits.memoryHighBytes !== undefined) writes.push({ file: 'memory.soft_limit_in_bytes', value: String(limits.memoryHighBytes) });
  return writes;
}

export type MemoryStats = Pick<CgroupStats, 'memoryCurrentBytes' | 'memoryPeakBytes' | 'oomKills'>;

export async function readMemoryStats(fs: CgroupFs, dir: string): Promise<MemoryStats> {
  const number = async (file: string): Promise<number> => parseSingleNumber(await readControl(fs, dir, file), path.join(dir, file));
  const oomControl = parseFlatKeyed(await readControl(fs, dir, 'memory.oom_control'));
  return {
    memoryCurrentBytes: await number('memory.usage_in_bytes'),
    memoryPeakBytes: await number('memory.max_usage_in_bytes'),
    // oom_kill in memory.oom_control: kernel >= 4.13.
    oomKills: oomControl.get('oom_kill') ?? 0,
  };
}
