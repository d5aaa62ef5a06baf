import { constants } from 'node:os';

import { Command, Option } from 'clipanion';

import type { StopJobOptions } from '../../client';
import { REQUEST_BOUNDS } from '../../client/basics';
import { flagError } from '../run';
import { ClientCommand, parseFlag } from './client-command';
import { toJobReport } from './job-report';
import { parseDuration } from './units';

/** "TERM", "sigterm", "SIGTERM" or "15" → "SIGTERM". */
export function normalizeSignal(text: string): string | undefined {
  const signals = constants.signals as Record<string, number | undefined>;
  if (/^\d+$/.test(text)) return Object.keys(signals).find((name) => signals[name] === Number(text));
  const name = text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  return signals[name] === undefined ? undefined : name;
}

/** The --signal and --grace values as StopJob options; a bad one is a usage error naming its flag. */
export function parseStopOptions(signalText: string | undefined, graceText: string | undefined): StopJobOptions {
  let signal: string | undefined;
  if (signalText !== undefined) {
    signal = normalizeSignal(signalText);
    if (signal === undefined) throw flagError('--signal', `unknown signal ${JSON.stringify(signalText)}; use a name like TERM, INT or KILL`);
  }
  const graceMs = graceText === undefined ? undefined : parseFlag('--grace', graceText, parseDuration);
  if (graceMs !== undefined && graceMs > REQUEST_BOUNDS.maxGraceMs) throw flagError('--grace', `must be at most ${REQUEST_BOUNDS.maxGraceMs / 3_600_000}h`);
  return { ...(signal === undefined ? {} : { signal }), ...(graceMs === undefined ? {} : { graceMs }) };
}

export class StopCommand extends ClientCommand {
  static override paths = [['stop']];
  static override usage = Command.Usage({
    description: 'Stop a job',
    details: `
      Sends the signal (SIGTERM unless --signal says otherwise) to every process of the job, waits
      the grace period (the daemon's default, 10s, unless --grace says otherwise), then kills
      whatever is left of the job. Returns once the job is gone and prints how it ended. JOB is a
      job id, its first characters or the job's name. Stopping a job that already finished is not an error.

      Exit status: 0 stopped (or already finished), 1 error, 2 usage error.
    `,
    examples: [
      ['Stop a job', '$0 stop 3f2a9c1e'],
      ['Ask politely with SIGINT, kill after 30 seconds', '$0 stop --signal INT --grace 30s 3f2a9c1e'],
      ['Kill at once', '$0 stop --signal KILL --grace 0 3f2a9c1e'],
    ],
  });

  signal = Option.String('--signal', { description: 'first signal: TERM (default), INT, HUP, KILL… or its number' });
  grace = Option.String('--grace', { description: 'time between the signal and the kill, e.g. 10s, 500ms (default: the daemon\'s, 10s)' });
  job = Option.String({ name: 'JOB' });

  async runCommand(): Promise<number> {
    const options = parseStopOptions(this.signal, this.grace);
    const client = await this.connect();
    const id = await this.resolveJobId(client, this.job);
    const response = await client.stopJob(id, options);
    const job = toJobReport(response.job);
    if (this.json) this.printJson({ alreadyFinished: response.alreadyFinished, job });
    else this.print(`${job.id}${response.alreadyFinished ? ' had already finished' : ''}: ${job.reason ?? job.state}`);
    return 0;
  }
}
