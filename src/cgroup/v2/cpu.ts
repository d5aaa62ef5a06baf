// cgroup v2 cpu controller: quota (cpu.max) and weight (cpu.weight); usage and throttling from cpu.stat.
// cpu.stat's usage fields exist even without the cpu controller (the unified hierarchy of a hybrid
// host has them), the throttling fields only with it.
import { childPath, parseFlatKeyed, type ControlWrite, type StatsPart } from '../cgroup-fs';
import { CPU_PERIOD_MICROS, cpuQuotaMicros, type ResolvedLimits } from '../limits';
import type { CgroupStats } from '../types';

export function cpuWrites(limits: ResolvedLimits): ControlWrite[] {
  const writes: ControlWrite[] = [];
  if (limits.cpu !== undefined) writes.push({ file: 'cpu.max', value: `${cpuQuotaMicros(limits.cpu)} ${CPU_PERIOD_MICROS}` });
  if (limits.cpuWeight !== undefined) writes.push({ file: 'cpu.weight', value: String(limits.cpuWeight) });
  return writes;
}

export type CpuStats = Pick<
  CgroupStats,
  'cpuUsageMicros' | 'cpuUserMicros' | 'cpuSystemMicros' | 'cpuThrottledPeriods' | 'cpuThrottledMicros'
>;

export function parseCpuStat(text: string): CpuStats {
  const stat = parseFlatKeyed(text);
  return {
    cpuUsageMicros: stat.get('usage_usec') ?? 0,
    cpuUserMicros: stat.get('user_usec') ?? 0,
    cpuSystemMicros: stat.get('system_usec') ?? 0,
    cpuThrottledPeriods: stat.get('nr_throttled') ?? 0,
    cpuThrottledMicros: stat.get('throttled_usec') ?? 0,
  };
}

export const cpuStats: StatsPart<CpuStats> = {
  files: ['cpu.stat'],
  parse: (files, dir) => parseCpuStat(files.required(childPath(dir, 'cpu.stat'))),
};
