// cgroup v2 memory controller: hard limit without swap, soft limit, and OOM kills the whole job.
import { childPath, parseFlatKeyed, parseSingleNumber, type ControlWrite, type StatsPart } from '../cgroup-fs';
import type { ResolvedLimits } from '../limits';
import type { CgroupStats } from '../types';

/**
 * `oomGroup`: a job's OOM kill takes the whole job; an identity's slice sets no such thing (its OOM
 * kills take the victim's job, by the job's own memory.oom.group, not every job of the identity).
 */
export function memoryWrites(limits: ResolvedLimits, oomGroup = true): ControlWrite[] {
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
  // Only once the job's process has exec'd: until then the spawn's processes in the cgroup share
  // the daemon's memory (clone with CLONE_VM), and a group kill takes every process sharing a
  // victim's memory, the daemon included. A plain OOM kill spares them (the kernel skips a vfork
  // child), so an OOM during the exec kills the process that exec'd, or fails the exec.
  if (oomGroup) writes.push({ file: 'memory.oom.group', value: '1', optional: true, afterStart: true });
  return writes;
}

export type MemoryStats = Pick<CgroupStats, 'memoryCurrentBytes' | 'memoryPeakBytes' | 'oomKills'>;

export const memoryStats: StatsPart<MemoryStats> = {
  files: ['memory.current', 'memory.peak', 'memory.events'],
  parse(files, dir) {
    const current = childPath(dir, 'memory.current');
    const peak = childPath(dir, 'memory.peak'); // kernel >= 5.19
    const peakText = files.optional(peak);
    return {
      memoryCurrentBytes: parseSingleNumber(files.required(current), current),
      memoryPeakBytes: peakText === undefined ? null : parseSingleNumber(peakText, peak),
      oomKills: parseFlatKeyed(files.required(childPath(dir, 'memory.events'))).get('oom_kill') ?? 0,
    };
  },
};
