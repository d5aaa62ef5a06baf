// A job's resource use on the wire: ResourceStats (src/resource-stats.ts) to and from the protobuf
// message, field by field in one place, for the server (which sends it) and the client (which reads it).
import type { ResourceStats as PbResourceStats } from '../gen/jobworker/v1/jobworker';
import type { ResourceStats } from '../resource-stats';

export function resourceStatsToPb(stats: ResourceStats): PbResourceStats {
  return {
    cpuUsageMicros: stats.cpuUsageMicros,
    cpuUserMicros: stats.cpuUserMicros,
    cpuSystemMicros: stats.cpuSystemMicros,
    cpuThrottledPeriods: stats.cpuThrottledPeriods,
    cpuThrottledMicros: stats.cpuThrottledMicros,
    memoryCurrentBytes: stats.memoryCurrentBytes,
    memoryPeakBytes: stats.memoryPeakBytes ?? undefined,
    oomKills: stats.oomKills,
    pidsCurrent: stats.pidsCurrent,
    io: stats.io.map((io) => ({ device: io.device, readBytes: io.readBytes, writeBytes: io.writeBytes, readOps: io.readOps, writeOps: io.writeOps })),
  };
}

export function resourceStatsFromPb(stats: PbResourceStats): ResourceStats {
  return {
    cpuUsageMicros: stats.cpuUsageMicros,
    cpuUserMicros: stats.cpuUserMicros,
    cpuSystemMicros: stats.cpuSystemMicros,
    cpuThrottledPeriods: stats.cpuThrottledPeriods,
    cpuThrottledMicros: stats.cpuThrottledMicros,
    memoryCurrentBytes: stats.memoryCurrentBytes,
    memoryPeakBytes: stats.memoryPeakBytes ?? null,
    oomKills: stats.oomKills,
    pidsCurrent: stats.pidsCurrent,
    io: stats.io.map((io) => ({ device: io.device, readBytes: io.readBytes, writeBytes: io.writeBytes, readOps: io.readOps, writeOps: io.writeOps })),
  };
}
