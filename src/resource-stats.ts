// A job's resource use at one moment: what its cgroup reports (src/cgroup), what the API carries
// (src/api maps it to and from the wire) and what clients show (src/client). One shape for every
// layer; dependency-free, so every layer can import it.

export interface IoDeviceStats {
  /** "MAJ:MIN" */
  device: string;
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

/** A snapshot of a job's resource use, read from its cgroup. */
export interface ResourceStats {
  cpuUsageMicros: number;
  cpuUserMicros: number;
  cpuSystemMicros: number;
  /** CFS periods in which the job was throttled, and for how long in total. */
  cpuThrottledPeriods: number;
  cpuThrottledMicros: number;
  memoryCurrentBytes: number;
  /** Highest memory use seen; null where the kernel does not keep it. */
  memoryPeakBytes: number | null;
  /** Times the kernel's OOM killer killed a process of the job (memory.events oom_kill). */
  oomKills: number;
  pidsCurrent: number;
  io: IoDeviceStats[];
}

type CpuPart = Pick<ResourceStats, 'cpuUsageMicros' | 'cpuUserMicros' | 'cpuSystemMicros'>;
type ThrottlingPart = Pick<ResourceStats, 'cpuThrottledPeriods' | 'cpuThrottledMicros'>;
type MemoryPart = Pick<ResourceStats, 'memoryCurrentBytes' | 'memoryPeakBytes' | 'oomKills'>;

/**
 * Stats from the parts the controllers' files give, as one literal: V8 gives every object made by
 * spreading parts (`{ ...cpu, ...memory, pids }`) a hidden class of its own, and each finished job
 * keeps its final stats.
 */
export function resourceStats(cpu: CpuPart, throttling: ThrottlingPart, memory: MemoryPart, pidsCurrent: number, io: IoDeviceStats[]): ResourceStats {
  return {
    cpuUsageMicros: cpu.cpuUsageMicros,
    cpuUserMicros: cpu.cpuUserMicros,
    cpuSystemMicros: cpu.cpuSystemMicros,
    cpuThrottledPeriods: throttling.cpuThrottledPeriods,
    cpuThrottledMicros: throttling.cpuThrottledMicros,
    memoryCurrentBytes: memory.memoryCurrentBytes,
    memoryPeakBytes: memory.memoryPeakBytes,
    oomKills: memory.oomKills,
    pidsCurrent,
    io,
  };
}
