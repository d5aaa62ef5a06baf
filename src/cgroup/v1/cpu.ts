// cgroup v1 cpu controller: CFS quota and period, shares; throttling from cpu.stat.
import { childPath, parseFlatKeyed, type ControlWrite, type StatsPart } from '../cgroup-fs';
import { CPU_PERIOD_MICROS, cpuQuotaMicros, type ResolvedLimits } from '../limits';
import type { CgroupStats } from '../types';

/** cpu.cfs_period_us of a new v1 cgroup (kernel default_cfs_period()). */
const KERNEL_DEFAULT_PERIOD_MICROS = 100_000;

/** v1 cpu.shares bounds (kernel MIN_SHARES / MAX_SHARES). */
const MIN_SHARES = 2;
const MAX_SHARES = 262_144;

/**
 * cpu.weight (1..10000, default 100) → cpu.shares (2..262144, default 1024), linearly, as systemd
 * maps them, so that the default weight gives the default share.
 */
export function weightToShares(weight: number): number {
  return Math.min(MAX_SHARES, Math.max(MIN_SHARES, Math.round((weight * 1024) / 100)));
}

export function cpuWrites(limits: ResolvedLimits): ControlWrite[] {
  const writes: ControlWrite[] = [];
  if (limits.cpu !== undefined) {
    // The quota is checked against the period in place: a new cgroup starts with the kernel's
    // default period (100 ms), which is ours, so only a different one would need writing first.
    if (CPU_PERIOD_MICROS !== KERNEL_DEFAULT_PERIOD_MICROS) writes.push({ file: 'cpu.cfs_period_us', value: String(CPU_PERIOD_MICROS) });
    writes.push({ file: 'cpu.cfs_quota_us', value: String(cpuQuotaMicros(limits.cpu)) });
  }
  if (limits.cpuWeight !== undefined) writes.push({ file: 'cpu.shares', value: String(weightToShares(limits.cpuWeight)) });
  return writes;
}

export type CpuThrottling = Pick<CgroupStats, 'cpuThrottledPeriods' | 'cpuThrottledMicros'>;

/** v1 cpu.stat: nr_throttled, and throttled_time in nanoseconds. */
export function parseCpuThrottling(text: string): CpuThrottling {
  const stat = parseFlatKeyed(text);
  return {
    cpuThrottledPeriods: stat.get('nr_throttled') ?? 0,
    cpuThrottledMicros: Math.floor((stat.get('throttled_time') ?? 0) / 1000),
  };
}

export const cpuThrottling: StatsPart<CpuThrottling> = {
  files: ['cpu.stat'],
  parse: (files, dir) => parseCpuThrottling(files.required(childPath(dir, 'cpu.stat'))),
};
