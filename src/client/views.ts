// What the client answers with: plain TypeScript objects, never generated protobuf messages. States
// and streams are words, times are Dates (log chunks keep the wire's microseconds), every field is
// present (null where it does not apply). Built from the wire in ./convert.ts only.
import type { JobStateName } from '../api/job-state-names';
import type { IoDeviceStats, ResourceStats } from '../resource-stats';

export { JOB_STATE_NAMES, type JobStateName } from '../api/job-state-names';

export interface JobView {
  id: string;
  /** The identity that started it. */
  owner: string;
  /** Its name (unique among its owner's jobs); null: none. */
  name: string | null;
  /** Its labels (none: empty). */
  labels: Record<string, string>;
  command: string;
  /** Its arguments; in listings of a job with a big argv + environment, only the leading ones. */
  args: string[];
  /** Arguments not in `args` (0: complete; GetJob always answers with every one). */
  argsOmitted: number;
  cwd: string;
  /** The user it runs as; null only while it is starting and its user is not settled. */
  user: JobUserView | null;
  /** How it is isolated from the host and from other jobs. */
  isolation: IsolationView;
  /** 'unknown': a state this client does not know (a newer daemon's). */
  state: JobStateName | 'unknown';
  /** Process id of the main process; null before it runs. */
  pid: number | null;
  /** How it ended; every field null (oomKilled false) until it has. */
  outcome: JobOutcomeView;
  createdAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  limits: LimitsView;
  /** The longest it may run, ms from its start; null: no limit. */
  maxRuntimeMs: number | null;
  log: LogInfoView;
  /** Live while running (GetJob), the final reading once finished; null if unknown. */
  stats: StatsView | null;
  /** Where a pool job is queued or runs; null for a job of one daemon alone. */
  pool: PoolPlacementView | null;
}

export interface PoolPlacementView {
  name: string;
  /** The daemon that claimed it, and where clients reach it; null while queued. */
  runnerHost: string | null;
  runnerAddress: string | null;
  retries: number;
  /** Runs begun: 0 while first queued, 1 once claimed, more after lost runs were retried. */
  attempts: number;
}

export interface JobUserView {
  uid: number;
  gid: number;
  groups: number[];
  /** Its name in the daemon's user database; null if none (dynamic uids never have one). */
  name: string | null;
  /** 'dynamic': a uid of its own from the daemon's range; 'mapped': its owner's configured user; 'requested': an admin's choice. */
  kind: UserKindName;
}

export type UserKindName = 'dynamic' | 'mapped' | 'requested' | 'unknown';
export type NamespaceViewName = 'pid' | 'mount' | 'cgroup' | 'ipc' | 'uts' | 'network';
export type NetworkName = 'host' | 'none';

export interface IsolationView {
  /** Namespaces of its own; those not listed are the host's. */
  namespaces: NamespaceViewName[];
  network: NetworkName;
  readOnlyRoot: boolean;
  mounts: MountView[];
}

export interface MountView {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface JobOutcomeView {
  exitCode: number | null;
  /** Signal that ended the main process, e.g. "SIGKILL". */
  signal: string | null;
  oomKilled: boolean;
  /** Who stopped it. */
  stoppedBy: string | null;
  /** It reached its maxRuntimeMs and was stopped for it (its state is then failed). */
  timedOut: boolean;
  /** One line for people: "exited with code 0", "stopped by alice: killed by SIGTERM". */
  reason: string | null;
}

/** A job's limits; null: not set (the daemon's default applies). */
export interface LimitsView {
  cpu: number | null;
  cpuWeight: number | null;
  memoryBytes: number | null;
  memoryHighBytes: number | null;
  pids: number | null;
  io: IoLimitView[];
}

export interface IoLimitView {
  /** Empty: the disk behind the job's working directory. */
  device: string;
  readBytesPerSecond: number | null;
  writeBytesPerSecond: number | null;
  readIops: number | null;
  writeIops: number | null;
}

export interface LogInfoView {
  /** Size of the log file: the output plus a small header per record. */
  sizeBytes: number;
  droppedBytes: number;
  truncated: boolean;
  writeError: string | null;
}

/** What an identity uses of its limits, all its jobs together (GetIdentityUsage). */
export interface IdentityUsageView {
  identity: string;
  /** Its slice: the cgroup its jobs are in. */
  slice: string;
  runningJobs: number;
  maxRunningJobs: number;
  /** Bytes of its logs on disk, running and finished jobs. */
  logBytes: number;
  maxLogBytes: number;
  /** Its slice's kernel limits (null: none). */
  limits: LimitsView;
  /** What its slice uses now; null when it has none. */
  stats: StatsView | null;
}

export type StatsView = ResourceStats;
export type IoStatsView = IoDeviceStats;

export type OutputStreamName = 'stdout' | 'stderr';
/** 'marker': a note of jobworker's own in the log (JSON: {"event":"truncated",…}). */
export type LogStreamName = OutputStreamName | 'marker';

export interface LogChunkView {
  stream: LogStreamName;
  /** A view into the received message, not a copy. */
  data: Buffer;
  timeUnixMicros: number;
  /** Where its record starts in the log, and where the next one does (resume from there). */
  offset: number;
  nextOffset: number;
}

/** One StreamLogs message: chunks of output, and on the last one the job's final status. */
export interface LogMessageView {
  chunks: LogChunkView[];
  finalStatus: JobView | null;
}

/** One WatchJobs message. */
export interface JobChangeView {
  job: JobView;
  /** null: not a change but the job's status when the watch began. */
  previousState: JobStateName | null;
}

export interface StopResultView {
  job: JobView;
  /** The job had already finished: nothing was signalled. */
  alreadyFinished: boolean;
}

export interface JobPageView {
  jobs: JobView[];
  /** Empty on the last page. */
  nextPageToken: string;
}
