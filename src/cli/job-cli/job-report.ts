// What job-cli shows of a job: one plain object built from the client's JobView, printed as is by
// --json and rendered for people by format.ts, so both always say the same thing. Every field is
// present (null when it does not apply), states are lower-case words, times RFC 3339 (UTC), and the
// keys come in this order (scripts may read them; e2e tests check the shapes).
import { constants } from 'node:os';

// The views' own module, not the client's index: the page's bundle type-checks this file, and the
// index would bring the gRPC channel and TLS code into the browser's program.
import type { JobOutcomeView, JobView } from '../../client/views';

/** The job as the client sees it, with its outcome's fields at the top level, times as text and the duration. */
export type JobReport = Pick<JobView, 'id' | 'name' | 'owner' | 'labels' | 'command' | 'args' | 'argsOmitted' | 'cwd' | 'user' | 'isolation' | 'state' | 'pid'> &
  JobOutcomeView & {
    createdAt: string | null;
    startedAt: string | null;
    finishedAt: string | null;
    /** From start to finish (to now while running); null before it started. */
    durationMs: number | null;
  } & Pick<JobView, 'limits' | 'maxRuntimeMs' | 'log' | 'stats' | 'pool'>;

const iso = (time: Date | null): string | null => time?.toISOString() ?? null;

export function toJobReport(job: JobView, now: Date = new Date()): JobReport {
  const { id, name, owner, labels, command, args, argsOmitted, cwd, user, isolation, state, pid, limits, maxRuntimeMs, log, stats, pool } = job;
  const { exitCode, signal, oomKilled, stoppedBy, timedOut, reason } = job.outcome;
  const end = job.finishedAt ?? (job.startedAt === null ? null : now);
  const durationMs = job.startedAt === null || end === null ? null : Math.max(0, end.getTime() - job.startedAt.getTime());
  // The order of the keys is the order --json prints them in.
  return { id, name, owner, labels, command, args, argsOmitted, cwd, user, isolation, state, pid, exitCode, signal, oomKilled, stoppedBy, timedOut, reason, createdAt: iso(job.createdAt), startedAt: iso(job.startedAt), finishedAt: iso(job.finishedAt), durationMs, limits, maxRuntimeMs, log, stats, pool };
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
