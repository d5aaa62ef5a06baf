// A job's resource use on the wire: ResourceStats (src/resource-stats.ts) to and from the protobuf
// message, field by field in one place, for the server (which sends it) and the client (which reads it).
import type { ResourceStats as PbResourceStats } from '../gen/jobworker/v1/jobworker';
import { resourceStats, type ResourceStats } from '../resource-stats';

// The two shapes name every field alike (the types check it both ways): only the absent peak differs.
// Field by field rather than `{ ...stats, peak }`, which V8 gives a hidden class per object.
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
    io: stats.io.map((io) => Object.assign({}, io)),
  };
}

/** Keys in the message's field order (clients print them in it). */
export function resourceStatsFromPb(stats: PbResourceStats): ResourceStats {
  return resourceStats(stats, stats, { memoryCurrentBytes: stats.memoryCurrentBytes, memoryPeakBytes: stats.memoryPeakBytes ?? null, oomKills: stats.oomKills }, stats.pidsCurrent, stats.io.map((io) => Object.assign({}, io)));
}
