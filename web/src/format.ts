// The page says things the way job-cli does: the same formatters (sizes, rates, durations, command
// lines, exit cells), imported from the CLI rather than written twice.
export { formatAgo, formatBytes, formatDuration, formatPercent, formatRate } from '../../src/cli/job-cli/units';
export { averageCpuPercent, commandLine, exitCell, formatLimits, poolLine, truncate } from '../../src/cli/job-cli/format';
import type { UiJob } from '../../src/cli/ui/protocol';

export const FINISHED_STATES: readonly string[] = ['exited', 'failed', 'stopped', 'lost'];

export function isFinished(job: UiJob): boolean {
  return FINISHED_STATES.includes(job.state);
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
