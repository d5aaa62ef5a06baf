// What job-cli shows of a job: one plain object built from the client's JobView, printed as is by
// --json and rendered for people by format.ts, so both always say the same thing. Every field is
// present (null when it does not apply), states are lower-case words, times RFC 3339 (UTC), and the
// keys come in this order (scripts may read them; e2e tests check the shapes).
import { constants } from 'node:os';

import type { JobStateName, JobUserView, JobView, LimitsView, LogInfoView, StatsView } from '../../client';

export interface JobReport {
  id: string;
  owner: string;
  command: string;
  args: string[];
  cwd: string;
  /** The user it runs as; null: the daemon's own. */
  user: JobUserView | null;
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
  log: LogInfoView;
  /** Live while running (query, top), the final snapshot once finished; null if unknown. */
  stats: StatsView | null;
}

export function toJobReport(job: JobView, now: Date = new Date()): JobReport {
  const end = job.finishedAt ?? (job.startedAt === null ? null : now);
  return {
    id: job.id,
    owner: job.owner,
    command: job.command,
    args: job.args,
    cwd: job.cwd,
    user: job.user,
    state: job.state,
    pid: job.pid,
    exitCode: job.outcome.exitCode,
    signal: job.outcome.signal,
    oomKilled: job.outcome.oomKilled,
    stoppedBy: job.outcome.stoppedBy,
    reason: job.outcome.reason,
    createdAt: job.createdAt?.toISOString() ?? null,
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    durationMs: job.startedAt === null || end === null ? null : Math.max(0, end.getTime() - job.startedAt.getTime()),
    limits: job.limits,
    log: job.log,
    stats: job.stats,
  };
}

export function isFinished(job: Pick<JobReport, 'state'>): boolean {
  return job.state === 'exited' || job.state === 'failed' || job.state === 'stopped' || job.state === 'lost';
}

/**
 * The exit status a shell would report for the job: its exit code, or 128 + the signal's number when
 * a signal ended it (137 for SIGKILL, so also for an OOM kill). A lost job, which has neither, is 1.
 */
export function exitStatusOf(job: Pick<JobReport, 'exitCode' | 'signal'>): number {
  if (job.exitCode !== null) return job.exitCode;
  if (job.signal !== null) {
    const number = (constants.signals as Record<string, number | undefined>)[job.signal];
    if (number !== undefined) return 128 + number;
  }
  return 1;
}
