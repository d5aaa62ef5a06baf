// What job-cli shows of a job: one plain object built from the API's Job, printed as is by --json
// and rendered for people by format.ts, so both always say the same thing. Every field is present
// (null when it does not apply), states and streams are lower-case words, times RFC 3339 (UTC).
import { constants } from 'node:os';

import * as pb from '../../gen/jobworker/v1/jobworker';

export type JobStateName = 'starting' | 'running' | 'exited' | 'failed' | 'stopped' | 'lost';

export const JOB_STATES: readonly JobStateName[] = ['starting', 'running', 'exited', 'failed', 'stopped', 'lost'];

const STATE_NAMES: Record<pb.JobState, JobStateName | 'unknown'> = {
  [pb.JobState.JOB_STATE_UNSPECIFIED]: 'unknown',
  [pb.JobState.JOB_STATE_STARTING]: 'starting',
  [pb.JobState.JOB_STATE_RUNNING]: 'running',
  [pb.JobState.JOB_STATE_EXITED]: 'exited',
  [pb.JobState.JOB_STATE_FAILED]: 'failed',
  [pb.JobState.JOB_STATE_STOPPED]: 'stopped',
  [pb.JobState.JOB_STATE_LOST]: 'lost',
};

const PB_STATES: Record<JobStateName, pb.JobState> = {
  starting: pb.JobState.JOB_STATE_STARTING,
  running: pb.JobState.JOB_STATE_RUNNING,
  exited: pb.JobState.JOB_STATE_EXITED,
  failed: pb.JobState.JOB_STATE_FAILED,
  stopped: pb.JobState.JOB_STATE_STOPPED,
  lost: pb.JobState.JOB_STATE_LOST,
};

export function stateToPb(state: JobStateName): pb.JobState {
  return PB_STATES[state];
}

export interface IoLimitView {
  /** Empty: the disk behind the job's working directory. */
  device: string;
  readBytesPerSecond: number | null;
  writeBytesPerSecond: number | null;
  readIops: number | null;
  writeIops: number | null;
}

export interface LimitsView {
  cpu: number | null;
  cpuWeight: number | null;
  memoryBytes: number | null;
  memoryHighBytes: number | null;
  pids: number | null;
  io: IoLimitView[];
}

export interface StatsView {
  cpuUsageMicros: number;
  cpuUserMicros: number;
  cpuSystemMicros: number;
  cpuThrottledPeriods: number;
  cpuThrottledMicros: number;
  memoryCurrentBytes: number;
  memoryPeakBytes: number | null;
  oomKills: number;
  pidsCurrent: number;
  io: { device: string; readBytes: number; writeBytes: number; readOps: number; writeOps: number }[];
}

export interface JobView {
  id: string;
  owner: string;
  command: string;
  args: string[];
  cwd: string;
  /** The user it runs as; null: the daemon's own. */
  user: { uid: number; gid: number; groups: number[] } | null;
  state: JobStateName | 'unknown';
  /** Process id of the main process; null before it runs. */
  pid: number | null;
  exitCode: number | null;
  /** Signal that ended the main process, e.g. "SIGKILL". */
  signal: string | null;
  oomKilled: boolean;
  stoppedBy: string | null;
  /** One line for people: "exited with code 0", "stopped by alice: killed by SIGTERM". */
  reason: string | null;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** From start to finish (to now while running); null before it started. */
  durationMs: number | null;
  limits: LimitsView;
  log: { sizeBytes: number; droppedBytes: number; truncated: boolean; writeError: string | null };
  /** Live while running (query, top), the final snapshot once finished; null if unknown. */
  stats: StatsView | null;
}

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);
const emptyToNull = (value: string): string | null => (value === '' ? null : value);

export function toJobView(job: pb.Job, now: Date = new Date()): JobView {
  const limits = job.limits;
  const stats = job.stats;
  const end = job.finishedAt ?? (job.startedAt === undefined ? undefined : now);
  return {
    id: job.id,
    owner: job.owner,
    command: job.command,
    args: [...job.args],
    cwd: job.cwd,
    user: job.user === undefined ? null : { uid: job.user.uid, gid: job.user.gid, groups: [...job.user.groups] },
    state: STATE_NAMES[job.state] ?? 'unknown',
    pid: job.pid === 0 ? null : job.pid,
    exitCode: orNull(job.exitCode),
    signal: emptyToNull(job.signal),
    oomKilled: job.oomKilled,
    stoppedBy: emptyToNull(job.stoppedBy),
    reason: emptyToNull(job.reason),
    createdAt: job.createdAt?.toISOString() ?? null,
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    durationMs: job.startedAt === undefined || end === undefined ? null : Math.max(0, end.getTime() - job.startedAt.getTime()),
    limits: {
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
    },
    log: {
      sizeBytes: job.log?.sizeBytes ?? 0,
      droppedBytes: job.log?.droppedBytes ?? 0,
      truncated: job.log?.truncated ?? false,
      writeError: emptyToNull(job.log?.writeError ?? ''),
    },
    stats:
      stats === undefined
        ? null
        : {
            cpuUsageMicros: stats.cpuUsageMicros,
            cpuUserMicros: stats.cpuUserMicros,
            cpuSystemMicros: stats.cpuSystemMicros,
            cpuThrottledPeriods: stats.cpuThrottledPeriods,
            cpuThrottledMicros: stats.cpuThrottledMicros,
            memoryCurrentBytes: stats.memoryCurrentBytes,
            memoryPeakBytes: orNull(stats.memoryPeakBytes),
            oomKills: stats.oomKills,
            pidsCurrent: stats.pidsCurrent,
            io: stats.io.map((io) => ({ ...io })),
          },
  };
}

export function isFinished(job: Pick<JobView, 'state'>): boolean {
  return job.state === 'exited' || job.state === 'failed' || job.state === 'stopped' || job.state === 'lost';
}

/**
 * The exit status a shell would report for the job: its exit code, or 128 + the signal's number when
 * a signal ended it (137 for SIGKILL, so also for an OOM kill). A lost job, which has neither, is 1.
 */
export function exitStatusOf(job: Pick<JobView, 'exitCode' | 'signal'>): number {
  if (job.exitCode !== null) return job.exitCode;
  if (job.signal !== null) {
    const number = (constants.signals as Record<string, number | undefined>)[job.signal];
    if (number !== undefined) return 128 + number;
  }
  return 1;
}
