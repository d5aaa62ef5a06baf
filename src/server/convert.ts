// Between the wire (ts-proto messages) and the library (Worker types). Pure.
import type { CgroupStats, Limits } from '../cgroup/types';
import type { StreamName } from '../logs/format';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { JobState, JobStatus } from '../worker';

const STATE_TO_PB: Record<JobState, pb.JobState> = {
  starting: pb.JobState.JOB_STATE_STARTING,
  running: pb.JobState.JOB_STATE_RUNNING,
  exited: pb.JobState.JOB_STATE_EXITED,
  failed: pb.JobState.JOB_STATE_FAILED,
  stopped: pb.JobState.JOB_STATE_STOPPED,
  lost: pb.JobState.JOB_STATE_LOST,
};

const PB_TO_STATE = new Map<pb.JobState, JobState>(
  Object.entries(STATE_TO_PB).map(([state, value]) => [value, state as JobState]),
);

export function stateToPb(state: JobState): pb.JobState {
  return STATE_TO_PB[state];
}

/** undefined for values that name no state (UNSPECIFIED, unknown numbers). */
export function stateFromPb(value: pb.JobState): JobState | undefined {
  return PB_TO_STATE.get(value);
}

const STREAM_TO_PB: Record<StreamName, pb.Stream> = {
  stdout: pb.Stream.STREAM_STDOUT,
  stderr: pb.Stream.STREAM_STDERR,
  marker: pb.Stream.STREAM_MARKER,
};

export function streamToPb(stream: StreamName): pb.Stream {
  return STREAM_TO_PB[stream];
}

export function limitsFromPb(limits: pb.Limits | undefined): Limits {
  if (limits === undefined) return {};
  const out: Limits = {};
  if (limits.cpu !== undefined) out.cpu = limits.cpu;
  if (limits.cpuWeight !== undefined) out.cpuWeight = limits.cpuWeight;
  if (limits.memoryBytes !== undefined) out.memoryBytes = limits.memoryBytes;
  if (limits.memoryHighBytes !== undefined) out.memoryHighBytes = limits.memoryHighBytes;
  if (limits.pids !== undefined) out.pids = limits.pids;
  if (limits.io.length > 0) {
    out.io = limits.io.map((io) => ({
      ...(io.device === '' ? {} : { device: io.device }),
      ...(io.readBytesPerSecond === undefined ? {} : { readBps: io.readBytesPerSecond }),
      ...(io.writeBytesPerSecond === undefined ? {} : { writeBps: io.writeBytesPerSecond }),
      ...(io.readIops === undefined ? {} : { readIops: io.readIops }),
      ...(io.writeIops === undefined ? {} : { writeIops: io.writeIops }),
    }));
  }
  return out;
}

export function limitsToPb(limits: Limits): pb.Limits {
  return {
    cpu: limits.cpu,
    cpuWeight: limits.cpuWeight,
    memoryBytes: limits.memoryBytes,
    memoryHighBytes: limits.memoryHighBytes,
    pids: limits.pids,
    io: (limits.io ?? []).map((io) => ({
      device: io.device ?? '',
      readBytesPerSecond: io.readBps,
      writeBytesPerSecond: io.writeBps,
      readIops: io.readIops,
      writeIops: io.writeIops,
    })),
  };
}

export function statsToPb(stats: CgroupStats | null): pb.ResourceStats | undefined {
  if (stats === null) return undefined;
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
    io: stats.io.map((io) => ({ ...io })),
  };
}

export function jobToPb(status: JobStatus, liveStats?: CgroupStats | null): pb.Job {
  const outcome = status.outcome;
  return {
    id: status.id,
    owner: status.owner,
    command: status.command,
    args: status.args,
    cwd: status.cwd,
    limits: limitsToPb(status.limits),
    state: stateToPb(status.state),
    pid: status.pid ?? 0,
    exitCode: outcome?.exitCode ?? undefined,
    signal: outcome?.signal ?? '',
    oomKilled: outcome?.oomKilled ?? false,
    stoppedBy: outcome?.stoppedBy ?? '',
    reason: outcome?.reason ?? '',
    createdAt: status.createdAt,
    startedAt: status.startedAt ?? undefined,
    finishedAt: status.finishedAt ?? undefined,
    log: {
      sizeBytes: status.log.bytes,
      droppedBytes: status.log.droppedBytes,
      truncated: status.log.truncated,
      writeError: status.log.writeError ?? '',
    },
    stats: statsToPb(liveStats === undefined ? status.stats : liveStats),
    user: status.user === null ? undefined : { uid: status.user.uid, gid: status.user.gid, groups: status.user.groups ?? [] },
  };
}

/** Library field paths (camelCase) as the proto names them, for INVALID_ARGUMENT messages. */
const FIELD_NAMES: Record<string, string> = {
  readBps: 'read_bytes_per_second',
  writeBps: 'write_bytes_per_second',
};

export function protoFieldPath(field: string): string {
  if (!field.startsWith('limits')) return field; // command, args[i], env.NAME, cwd are named alike
  return field.replace(/[A-Za-z]+/g, (word) => FIELD_NAMES[word] ?? word.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
}
