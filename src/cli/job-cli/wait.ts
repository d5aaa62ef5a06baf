// `job-cli wait JOB…`: blocks until each job is final, like `docker wait`, by watching each one
// (WatchJobs with its id: the daemon ends the stream once the job is final, so no polling).
import { Command, Option } from 'clipanion';

import type { JobworkerClient } from '../../client';
import { CliError } from '../run';
import { ClientCommand } from './client-command';
import { isFinished, toJobReport, type JobReport } from './job-report';
import { exitOfFollowedJob } from './stream';

/** The job's status once it is final: the last message of a watch of that one job. */
export async function waitForJob(client: JobworkerClient, id: string, signal?: AbortSignal): Promise<JobReport> {
  let last: JobReport | null = null;
  for await (const change of client.watchJobs({ jobId: id }, signal)) last = toJobReport(change.job);
  if (last === null || !isFinished(last)) throw new CliError(`the watch of job ${id} ended before the job did`, `\`job-cli query ${id}\` shows it`);
  return last;
}

/**
 * Jobs watched at once, at most: each watch is a stream, and the daemon bounds the streams of an
 * identity (and HTTP/2 those of a connection). A job that ends while not yet watched is answered at
 * once when its turn comes, so this changes how long, not what.
 */
export const MAX_CONCURRENT_WATCHES = 16;

/** Runs `tasks`, at most `limit` at a time, in order; the promises are in the tasks' order. */
export function runLimited<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T>[] {
  let running = 0;
  const waiting: (() => void)[] = [];
  const acquire = async (): Promise<void> => {
    if (running < limit) running++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
  };
  // A freed slot goes straight to the next task waiting (the count stays), else it is given back.
  const release = (): void => {
    const next = waiting.shift();
    if (next === undefined) running--;
    else next();
  };
  return tasks.map(async (task) => {
    await acquire();
    try {
      return await task();
    } finally {
      release();
    }
  });
}

export class WaitCommand extends ClientCommand {
  static override paths = [['wait']];
  static override usage = Command.Usage({
    description: 'Wait until jobs end and print their exit statuses',
    details: `
      Blocks until each JOB has ended (exited, failed, stopped or lost), then prints its exit
      status on a line of its own, in the order the jobs were given, like \`docker wait\`. A job
      that had already ended is answered at once. JOB is a job id, its first characters or the
      job's name. The jobs are watched, not polled: the daemon says when each one ends.

      The exit status of a job is what a shell would report: its exit code, or 128 + the signal's
      number if a signal ended it (143 after a stop with SIGTERM, 137 for SIGKILL and OOM kills);
      1 for a lost job.

      With --json: an array of {"id", "exitStatus", "job"} (the job as \`query --json\` shows it).

      Exit status: one JOB: that job's exit status. Several: 0 if every job's status is 0, else the
      first non-zero one in the order given. 1 for an error of job-cli's (e.g. no such job; printed
      on stderr, starting "job-cli:"), 2 for a usage error.
    `,
    examples: [
      ['Wait for a job and use its exit code', '$0 wait 3f2a9c1e && echo passed'],
      ['Start two jobs, wait for both', 'a=$($0 start -- make a) b=$($0 start -- make b); $0 wait "$a" "$b"'],
    ],
  });

  jobs = Option.Rest({ name: 'JOB', required: 1 });

  async runCommand(): Promise<number> {
    const client = await this.connect();
    const ids: string[] = [];
    for (const text of this.jobs) ids.push(await this.resolveJobId(client, text));
    // Watched together (up to MAX_CONCURRENT_WATCHES), printed in the order given.
    const finals = runLimited(ids.map((id) => () => waitForJob(client, id)), MAX_CONCURRENT_WATCHES);
    // Each failure is thrown when its turn comes; until then it must not count as unhandled.
    for (const final of finals) final.catch(() => undefined);
    const statuses: number[] = [];
    const reports: { id: string; exitStatus: number; job: JobReport }[] = [];
    for (const final of finals) {
      const job = await final;
      const exitStatus = exitOfFollowedJob(job, (text) => this.note(text));
      statuses.push(exitStatus);
      if (this.json) reports.push({ id: job.id, exitStatus, job });
      else this.print(String(exitStatus));
    }
    if (this.json) this.printJson(reports);
    return statuses.find((status) => status !== 0) ?? 0;
  }
}
