// Between the wire (ts-proto messages) and what the client takes and answers with (./requests.ts,
// ./views.ts). The only module of the client besides client.ts that sees generated types. Pure.
import { jobStateFromPb, jobStateToPb } from '../api/job-state';
import { resourceStatsFromPb } from '../api/resource-stats';
import * as pb from '../gen/jobworker/v1/jobworker';
import { ClientError, StatusCode } from './client-error';
import type { LimitsRequest, ListJobsRequest, StartJobRequest, StreamLogsRequest, WatchJobsRequest } from './requests';
import type { IdentityUsageView, IsolationView, JobChangeView, JobView, LimitsView, LogChunkView, LogMessageView, LogStreamName, NamespaceViewName, OutputStreamName, UserKindName } from './views';

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);
const emptyToNull = (value: string): string | null => (value === '' ? null : value);

const UINT32_MAX = 0xffff_ffff;

/**
 * A whole number the wire can carry, else INVALID_ARGUMENT naming the field as the daemon does:
 * the encoder would throw a bare `invalid uint64: -1` (or a RangeError for 1.5 or NaN).
 */
function wholeNumber<T extends number | undefined>(field: string, value: T, max = Number.MAX_SAFE_INTEGER): T {
  if (value === undefined || (Number.isSafeInteger(value) && value >= 0 && value <= max)) return value;
  throw new ClientError(StatusCode.INVALID_ARGUMENT, `${field}: must be a whole number from 0 to ${max}, not ${String(value)}`);
}

function limitsFromPb(limits: pb.Limits | undefined): LimitsView {
  return {
    cpu: orNull(limits?.cpu),
    cpuWeight: orNull(limits?.cpuWeight),
    memoryBytes: orNull(limits?.memoryBytes),
    memoryHighBytes: orNull(limits?.memoryHighBytes),
    pids: orNull(limits?.pids),
    io: (limits?.io ?? []).map((io) => ({
      device: io.device,
      readBytesPerSecond: orNull(io.readBytesPerSecond),
      writeBytesPerSecond: orNull(io.writeBytesPerSecond),
      readIops: orNull(io.readIops),
      writeIops: orNull(io.writeIops),
    })),
  };
}

export function jobFromPb(job: pb.Job): JobView {
  return {
    id: job.id,
    owner: job.owner,
    name: emptyToNull(job.name),
    labels: job.labels,
    command: job.command,
    args: job.args,
    argsOmitted: job.argsOmitted,
    cwd: job.cwd,
    user: job.user === undefined ? null : { uid: job.user.uid, gid: job.user.gid, groups: job.user.groups, name: emptyToNull(job.user.name), kind: USER_KINDS.get(job.user.kind) ?? 'unknown' },
    isolation: isolationFromPb(job.isolation),
    state: jobStateFromPb(job.state) ?? 'unknown',
    pid: job.pid === 0 ? null : job.pid,
    outcome: {
      exitCode: orNull(job.exitCode),
      signal: emptyToNull(job.signal),
      oomKilled: job.oomKilled,
      stoppedBy: emptyToNull(job.stoppedBy),
      timedOut: job.timedOut,
      reason: emptyToNull(job.reason),
    },
    createdAt: orNull(job.createdAt),
    startedAt: orNull(job.startedAt),
    finishedAt: orNull(job.finishedAt),
    limits: limitsFromPb(job.limits),
    maxRuntimeMs: job.maxRuntimeMs === 0 ? null : job.maxRuntimeMs,
    log: {
      sizeBytes: job.log?.sizeBytes ?? 0,
      droppedBytes: job.log?.droppedBytes ?? 0,
      truncated: job.log?.truncated ?? false,
      writeError: emptyToNull(job.log?.writeError ?? ''),
    },
    stats: job.stats === undefined ? null : resourceStatsFromPb(job.stats),
    pool:
      job.pool === undefined
        ? null
        : { name: job.pool.name, runnerHost: emptyToNull(job.pool.runnerHost), runnerAddress: emptyToNull(job.pool.runnerAddress), retries: job.pool.retries, attempts: job.pool.attempts },
  };
}

const USER_KINDS = new Map<pb.UserKind, UserKindName>([
  [pb.UserKind.USER_KIND_DYNAMIC, 'dynamic'],
  [pb.UserKind.USER_KIND_MAPPED, 'mapped'],
  [pb.UserKind.USER_KIND_REQUESTED, 'requested'],
]);

const NAMESPACES: [pb.Namespace, NamespaceViewName][] = [
  [pb.Namespace.NAMESPACE_PID, 'pid'],
  [pb.Namespace.NAMESPACE_MOUNT, 'mount'],
  [pb.Namespace.NAMESPACE_CGROUP, 'cgroup'],
  [pb.Namespace.NAMESPACE_IPC, 'ipc'],
  [pb.Namespace.NAMESPACE_UTS, 'uts'],
  [pb.Namespace.NAMESPACE_NETWORK, 'network'],
];
const NAMESPACE_NAMES = new Map(NAMESPACES);
const NAMESPACES_TO_PB = new Map(NAMESPACES.map(([value, name]) => [name, value]));

function isolationFromPb(isolation: pb.Isolation | undefined): IsolationView {
  return {
    // Namespaces this client does not know (a newer daemon's) are left out.
    namespaces: (isolation?.namespaces ?? []).flatMap((value) => NAMESPACE_NAMES.get(value) ?? []),
    network: isolation?.network === pb.Network.NETWORK_NONE ? 'none' : 'host',
    readOnlyRoot: isolation?.readOnlyRoot ?? false,
    mounts: (isolation?.mounts ?? []).map((m) => ({ source: m.source, target: m.target, readOnly: m.readOnly })),
  };
}

export function identityUsageFromPb(usage: pb.IdentityUsage | undefined): IdentityUsageView {
  if (usage === undefined) throw new TypeError('GetIdentityUsage answered without a usage');
  return {
    identity: usage.identity,
    slice: usage.slice,
    runningJobs: usage.runningJobs,
    maxRunningJobs: usage.maxRunningJobs,
    logBytes: usage.logBytes,
    maxLogBytes: usage.maxLogBytes,
    limits: limitsFromPb(usage.limits),
    stats: usage.stats === undefined ? null : resourceStatsFromPb(usage.stats),
  };
}

/** A job in an answer that must carry one (a daemon that leaves it out is broken). */
export function requiredJobFromPb(job: pb.Job | undefined, rpc: string): JobView {
  if (job === undefined) throw new TypeError(`${rpc} answered without a job`);
  return jobFromPb(job);
}

const STREAM_NAMES = new Map<pb.Stream, LogStreamName>([
  [pb.Stream.STREAM_STDOUT, 'stdout'],
  [pb.Stream.STREAM_STDERR, 'stderr'],
  [pb.Stream.STREAM_MARKER, 'marker'],
]);

const STREAMS_TO_PB: Record<OutputStreamName, pb.Stream> = {
  stdout: pb.Stream.STREAM_STDOUT,
  stderr: pb.Stream.STREAM_STDERR,
};

function chunkFromPb(chunk: pb.LogChunk): LogChunkView {
  return {
    // A stream this client does not know (a newer daemon's) is output: shown as stdout.
    stream: STREAM_NAMES.get(chunk.stream) ?? 'stdout',
    data: chunk.data,
    timeUnixMicros: chunk.timeUnixMicros,
    offset: chunk.offset,
    nextOffset: chunk.nextOffset,
  };
}

export function logMessageFromPb(message: pb.StreamLogsResponse): LogMessageView {
  return {
    chunks: message.chunks.map(chunkFromPb),
    finalStatus: message.finalStatus === undefined ? null : jobFromPb(message.finalStatus),
  };
}

export function jobChangeFromPb(message: pb.WatchJobsResponse): JobChangeView {
  return { job: requiredJobFromPb(message.job, 'WatchJobs'), previousState: jobStateFromPb(message.previousState) ?? null };
}

// LimitsRequest names its fields as the message does; only an absent device differs ('' on the wire).
function limitsToPb(limits: LimitsRequest): pb.Limits {
  return pb.Limits.fromPartial({
    ...limits,
    cpuWeight: wholeNumber('limits.cpu_weight', limits.cpuWeight, UINT32_MAX),
    memoryBytes: wholeNumber('limits.memory_bytes', limits.memoryBytes),
    memoryHighBytes: wholeNumber('limits.memory_high_bytes', limits.memoryHighBytes),
    pids: wholeNumber('limits.pids', limits.pids, UINT32_MAX),
    io: (limits.io ?? []).map((io, i) => ({
      ...io,
      device: io.device ?? '',
      readBytesPerSecond: wholeNumber(`limits.io[${i}].read_bytes_per_second`, io.readBytesPerSecond),
      writeBytesPerSecond: wholeNumber(`limits.io[${i}].write_bytes_per_second`, io.writeBytesPerSecond),
      readIops: wholeNumber(`limits.io[${i}].read_iops`, io.readIops),
      writeIops: wholeNumber(`limits.io[${i}].write_iops`, io.writeIops),
    })),
  });
}

export function startJobRequestToPb(request: StartJobRequest): pb.StartJobRequest {
  return pb.StartJobRequest.fromPartial({
    command: request.command,
    args: request.args ?? [],
    env: request.env ?? {},
    cwd: request.cwd ?? '',
    limits: request.limits === undefined ? undefined : limitsToPb(request.limits),
    user:
      request.user === undefined
        ? undefined
        : {
            uid: wholeNumber('user.uid', request.user.uid, UINT32_MAX),
            gid: wholeNumber('user.gid', request.user.gid, UINT32_MAX),
            groups: (request.user.groups ?? []).map((group, i) => wholeNumber(`user.groups[${i}]`, group, UINT32_MAX)),
          },
    userName: request.userName ?? '',
    groupName: request.groupName ?? '',
    network: request.network === undefined ? pb.Network.NETWORK_UNSPECIFIED : request.network === 'none' ? pb.Network.NETWORK_NONE : pb.Network.NETWORK_HOST,
    mounts: request.mounts ?? [],
    readOnlyRoot: request.readOnlyRoot,
    hostNamespaces: (request.hostNamespaces ?? []).map((name) => NAMESPACES_TO_PB.get(name)!),
    pool: request.pool ?? '',
    retries: wholeNumber('retries', request.retries ?? 0, UINT32_MAX),
    jobId: request.jobId ?? '',
    maxRuntimeMs: wholeNumber('max_runtime_ms', request.maxRuntimeMs),
    name: request.name ?? '',
    labels: request.labels ?? {},
  });
}

export function listJobsRequestToPb(request: ListJobsRequest): pb.ListJobsRequest {
  return pb.ListJobsRequest.fromPartial({
    states: (request.states ?? []).map(jobStateToPb),
    owner: request.owner ?? '',
    name: request.name ?? '',
    labelSelector: request.labels ?? [],
    pageSize: wholeNumber('page_size', request.pageSize ?? 0, UINT32_MAX),
    pageToken: request.pageToken ?? '',
  });
}

export function streamLogsRequestToPb(request: StreamLogsRequest): pb.StreamLogsRequest {
  return pb.StreamLogsRequest.fromPartial({
    jobId: request.jobId,
    fromOffset: wholeNumber('from_offset', request.fromOffset ?? 0),
    follow: request.follow ?? false,
    streams: (request.streams ?? []).map((stream) => STREAMS_TO_PB[stream]),
    sinceUnixMicros: wholeNumber('since_unix_micros', request.sinceUnixMicros ?? 0),
    tailLines: wholeNumber('tail_lines', request.tailLines ?? 0, UINT32_MAX),
  });
}

export function watchJobsRequestToPb(request: WatchJobsRequest): pb.WatchJobsRequest {
  return pb.WatchJobsRequest.fromPartial({ jobId: request.jobId ?? '', states: (request.states ?? []).map(jobStateToPb) });
}
