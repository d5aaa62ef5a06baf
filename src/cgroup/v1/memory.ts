// cgroup v1 memory controller: hard limit (and memory+swap, where swap accounting is on), soft limit;
// usage, peak and the OOM kill counter.
import { childPath, parseFlatKeyed, parseSingleNumber, type ControlWrite, type StatsPart } from '../cgroup-fs';
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

export const memoryStats: StatsPart<MemoryStats> = {
  files: ['memory.oom_control', 'memory.usage_in_bytes', 'memory.max_usage_in_bytes'],
  parse(files, dir) {
    const number = (name: string): number => parseSingleNumber(files.required(childPath(dir, name)), childPath(dir, name));
    return {
      memoryCurrentBytes: number('memory.usage_in_bytes'),
      memoryPeakBytes: number('memory.max_usage_in_bytes'),
      // oom_kill in memory.oom_control: kernel >= 4.13.
      oomKills: parseFlatKeyed(files.required(childPath(dir, 'memory.oom_control'))).get('oom_kill') ?? 0,
    };
  },
};
