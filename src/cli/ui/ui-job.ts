// A job for the page: the same object `job-cli query --json` prints (one shape for programs and
// pages), plus whatever newer fields the client's view has that that shape does not name yet
// (they reach the page as they are, and the page shows them as they are).
import type { JobView } from '../../client';
import { toJobReport } from '../job-cli/job-report';
import type { UiJob } from './protocol';

export function toUiJob(job: JobView, now: Date = new Date()): UiJob {
  const { outcome: _outcome, ...rest } = job;
  return { ...rest, ...toJobReport(job, now) };
}
