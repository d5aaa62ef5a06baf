// The page says things the way job-cli does: the same formatters (sizes, rates, durations, command
// lines, exit cells), imported from the CLI rather than written twice.
export { formatAgo, formatBytes, formatDuration, formatPercent, formatRate } from '../../src/cli/job-cli/units';
export { averageCpuPercent, commandLine, exitCell, formatIsolation, formatLabels, formatLimits, formatUser, poolLine, truncate } from '../../src/cli/job-cli/format';
import type { UiJob } from '../../src/cli/ui/protocol';

export const FINISHED_STATES: readonly string[] = ['exited', 'failed', 'stopped', 'lost'];

export function isFinished(job: UiJob): boolean {
  return FINISHED_STATES.includes(job.state);
}

/** Running, or queued in a pool (a queued job is stopped where it is asked: no daemon will claim it). */
export function isStoppable(job: UiJob): boolean {
  return job.state === 'running' || job.state === 'queued';
}

/** Where a pool job is, in a few words: "pool batch · on w2", "pool batch · queued". */
export function poolPlace(pool: NonNullable<UiJob['pool']>): string {
  return `pool ${pool.name} · ${pool.runnerHost === null ? 'queued' : `on ${pool.runnerHost}`}`;
}

/** From start to finish, or to now while it runs. */
export function durationMs(job: UiJob, now: number): number | null {
  if (job.startedAt === null) return null;
  const end = job.finishedAt === null ? now : Date.parse(job.finishedAt);
  return Math.max(0, end - Date.parse(job.startedAt));
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
