// A job's resource use on the wire: ResourceStats (src/resource-stats.ts) to and from the protobuf
// message, field by field in one place, for the server (which sends it) and the client (which reads it).
import type { ResourceStats as PbResourceStats } from '../gen/jobworker/v1/jobworker';
import type { ResourceStats } from '../resource-stats';

// The two shapes name every field alike (the types check it both ways): only the absent peak differs.
export function resourceStatsToPb(stats: ResourceStats): PbResourceStats {
  return { ...stats, memoryPeakBytes: stats.memoryPeakBytes ?? undefined, io: stats.io.map((io) => ({ ...io })) };
}

/** Keys in the message's field order (clients print them in it). */
export function resourceStatsFromPb(stats: PbResourceStats): ResourceStats {
  return { ...stats, memoryPeakBytes: stats.memoryPeakBytes ?? null, io: stats.io.map((io) => ({ ...io })) };
}
