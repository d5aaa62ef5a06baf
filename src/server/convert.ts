// Between the wire (ts-proto messages) and the library (Worker types). Pure.
import { jobStateFromPb, jobStateToPb } from '../api/job-state';
import { resourceStatsToPb } from '../api/resource-stats';
import type { PoolJob, PoolJobState, PoolJobStatus, PoolPlacement } from '../fleet';
import * as pb from '../gen/jobworker/v1/jobworker';
import { NAMESPACE_NAMES, type CgroupStats, type IdentityUsage, type JobIsolation, type JobRunAs, type JobStatus, type Limits, type NamespaceName, type StreamName } from '../worker';

// The wire's state names are the pool jobs' states (the Worker's, plus queued): these two take one
// for the other without a cast, so they stop compiling if the lists part.
export function stateToPb(state: PoolJobState): pb.JobState {
  return jobStateToPb(state);
}

/** undefined for values that name no state (UNSPECIFIED, unknown numbers). */
export function stateFromPb(value: pb.JobState): PoolJobState | undefined {
  return jobStateFromPb(value);
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
  return stats === null ? undefined : resourceStatsToPb(stats);
}

/** A pool job as the wire has it: its status and where it is queued or runs. */
export function poolJobToPb(job: PoolJob, liveStats?: CgroupStats | null): pb.Job {
  return jobToPb(job.status, liveStats, job.placement);
}

export function jobToPb(status: JobStatus | PoolJobStatus, liveStats?: CgroupStats | null, placement?: PoolPlacement): pb.Job {
  const outcome = status.outcome;
  return {
    id: status.id,
    owner: status.owner,
    name: status.name ?? '',
    labels: status.labels,
    command: status.command,
    args: status.args,
    argsOmitted: status.argsOmitted,
    cwd: status.cwd,
    limits: limitsToPb(status.limits),
    state: stateToPb(status.state),
    pid: status.pid ?? 0,
    exitCode: outcome?.exitCode ?? undefined,
    signal: outcome?.signal ?? '',
    oomKilled: outcome?.oomKilled ?? false,
    stoppedBy: outcome?.stoppedBy ?? '',
    reason: outcome?.reason ?? '',
    maxRuntimeMs: status.maxRuntimeMs ?? 0,
    timedOut: outcome?.timedOut ?? false,
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
    user: status.user === null ? undefined : userToPb(status.user),
    pool:
      placement === undefined
        ? undefined
        : { name: placement.name, runnerHost: placement.runnerHost ?? '', runnerAddress: placement.runnerAddress ?? '', retries: placement.retries, attempts: placement.attempts },
    isolation: status.isolation === null ? undefined : isolationToPb(status.isolation),
  };
}

const USER_KIND_TO_PB: Record<JobRunAs['kind'], pb.UserKind> = {
  dynamic: pb.UserKind.USER_KIND_DYNAMIC,
  mapped: pb.UserKind.USER_KIND_MAPPED,
  requested: pb.UserKind.USER_KIND_REQUESTED,
};

function userToPb(user: JobRunAs): pb.JobUser {
  return { uid: user.uid, gid: user.gid, groups: user.groups, name: user.name ?? '', kind: USER_KIND_TO_PB[user.kind] };
}

const NAMESPACE_TO_PB: Record<NamespaceName, pb.Namespace> = {
  pid: pb.Namespace.NAMESPACE_PID,
  mount: pb.Namespace.NAMESPACE_MOUNT,
  cgroup: pb.Namespace.NAMESPACE_CGROUP,
  ipc: pb.Namespace.NAMESPACE_IPC,
  uts: pb.Namespace.NAMESPACE_UTS,
};

function isolationToPb(isolation: JobIsolation): pb.Isolation {
  const namespaces = NAMESPACE_NAMES.filter((name) => isolation.namespaces[name]).map((name) => NAMESPACE_TO_PB[name]);
  if (isolation.network === 'none') namespaces.push(pb.Namespace.NAMESPACE_NETWORK);
  return {
    namespaces,
    network: isolation.network === 'none' ? pb.Network.NETWORK_NONE : pb.Network.NETWORK_HOST,
    readOnlyRoot: isolation.readOnlyRoot,
    mounts: isolation.mounts.map((mount) => ({ source: mount.source, target: mount.target, readOnly: mount.readOnly })),
  };
}

/** Library field paths (camelCase) as the proto names them, for INVALID_ARGUMENT messages. */
const FIELD_NAMES: Record<string, string> = {
  readBps: 'read_bytes_per_second',
  writeBps: 'write_bytes_per_second',
};

/** The Worker's isolation and user fields as StartJobRequest names them. */
const REQUEST_FIELDS: [RegExp, string][] = [
  [/^isolation\.mounts/, 'mounts'],
  [/^isolation\.readOnlyRoot/, 'read_only_root'],
  [/^isolation\.namespaces(\.\w+)?/, 'host_namespaces'],
  [/^isolation\.network/, 'network'],
  [/^user\.name$/, 'user_name'],
  [/^user\.group$/, 'group_name'],
  [/^from$/, 'from_offset'],
];

export function protoFieldPath(field: string): string {
  if (field === 'maxRuntimeMs') return 'max_runtime_ms';
  for (const [pattern, name] of REQUEST_FIELDS) if (pattern.test(field)) return field.replace(pattern, name);
  if (!field.startsWith('limits')) return field; // command, args[i], env.NAME, cwd are named alike
  return field.replace(/[A-Za-z]+/g, (word) => FIELD_NAMES[word] ?? word.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
}

export function identityUsageToPb(usage: IdentityUsage): pb.IdentityUsage {
  return {
    identity: usage.identity,
    slice: usage.slice,
    runningJobs: usage.runningJobs,
    maxRunningJobs: usage.maxRunningJobs,
    logBytes: usage.logBytes,
    maxLogBytes: usage.maxLogBytes,
    limits: limitsToPb(usage.limits),
    stats: statsToPb(usage.stats),
  };
}
