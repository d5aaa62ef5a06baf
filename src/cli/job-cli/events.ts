// `job-cli events`: every change of state of the jobs one can see, as it happens (WatchJobs), one
// line each, until Ctrl-C or SIGTERM (a normal way to end it: exit 0).
import { Command, Option } from 'clipanion';

import type { JobChangeView } from '../../client';
import { ClientCommand } from './client-command';
import { commandLine, exitCell, truncate } from './format';
import { isFinished, toJobReport, type JobReport } from './job-report';
import { parseStates, STATE_FLAG_DESCRIPTION } from './states';
import { EXIT_BROKEN_PIPE } from './stream';

/** What --json prints for one change: `previousState` null for a job's state when the watch began. */
export interface JobEvent {
  time: string;
  previousState: JobReport['state'] | null;
  state: JobReport['state'];
  job: JobReport;
}

export function toJobEvent(change: JobChangeView, now: Date): JobEvent {
  const job = toJobReport(change.job, now);
  return { time: now.toISOString(), previousState: change.previousState, state: job.state, job };
}

/** `2026-12-05T10:00:01.123Z  3f2a9c1e-…  running -> exited  exit 0  sh -c 'make test'` */
export function renderJobEvent(event: JobEvent): string {
  const transition = event.previousState === null ? `${event.state} (current)` : `${event.previousState} -> ${event.state}`;
  const ending = isFinished(event.job) ? [`exit ${exitCell(event.job)}`] : [];
  return [event.time, event.job.id, transition, ...ending, truncate(commandLine(event.job), 80)].join('  ');
}

export class EventsCommand extends ClientCommand {
  static override paths = [['events']];
  static override usage = Command.Usage({
    description: 'Print every change of state of jobs as it happens',
    details: `
      Watches the jobs you can see (admins: everyone's) and prints one line each time one changes
      state (queued, starting, running, exited, failed, stopped, lost): the time, the job's id, the
      previous and the new state, how it ended, and its command. With --state, only changes into
      those states. With --current, the state of every matching job when the watch begins comes
      first (marked "(current)"). With JOB (an id, its first characters or a name), only that job, and the
      command ends once the job has.

      A reader slower than the changes sees each job's latest state rather than every step.

      With --json, each change is one JSON object on a line:
      {"time":…,"previousState":…,"state":…,"job":{…}} (the job as \`query --json\` shows it;
      previousState null for --current lines).

      Runs until Ctrl-C or SIGTERM. Exit status: 0 when ended that way (or when JOB ended), 1 error
      (e.g. the daemon went away), 2 usage error, 141 when its reader went away.
    `,
    examples: [
      ['Follow every change', '$0 events'],
      ['Only jobs that end badly', '$0 events --state failed,stopped,lost'],
      ['For a program: current states, then changes', '$0 events --current --json'],
    ],
  });

  states = Option.Array('--state', { description: `only changes into this state ${STATE_FLAG_DESCRIPTION}` });
  current = Option.Boolean('--current', false, { description: 'first print the state of every matching job when the watch begins' });
  job = Option.String({ name: 'JOB', required: false });

  async runCommand(): Promise<number> {
    const states = parseStates(this.states);
    const client = await this.connect();
    const jobId = this.job === undefined ? undefined : await this.resolveJobId(client, this.job);
    const stopped = new AbortController();
    let pipeBroken = false;
    const onSignal = () => stopped.abort();
    const onPipeError = (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') return;
      pipeBroken = true;
      stopped.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    this.context.stdout.on('error', onPipeError);
    try {
      for await (const change of client.watchJobs({ states, ...(jobId === undefined ? {} : { jobId }) }, stopped.signal)) {
        if (change.previousState === null && !this.current) continue;
        const event = toJobEvent(change, new Date());
        this.print(this.json ? JSON.stringify(event) : renderJobEvent(event));
      }
    } catch (error) {
      if (!stopped.signal.aborted) throw error;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return pipeBroken ? EXIT_BROKEN_PIPE : 0;
  }
}
