import { Command, Option } from 'clipanion';

import type { StreamLogsRequest } from '../../client';
import { REQUEST_BOUNDS } from '../../client/basics';
import { ClientCommand, parseFlag } from './client-command';
import { exitStatusOf, isFinished, type JobReport } from './job-report';
import { LogPrinter, printLogs } from './log-output';
import { parseInteger, parseSince } from './units';

/** 128 + SIGPIPE: our reader went away (`job-cli stream … | head`). */
export const EXIT_BROKEN_PIPE = 141;

export class StreamCommand extends ClientCommand {
  static override paths = [['stream'], ['logs']];
  static override usage = Command.Usage({
    description: 'Print a job\'s output, following it until the job ends',
    details: `
      Prints the job's output from the beginning (or --tail / --since), the job's stdout on stdout
      and its stderr on stderr, and keeps following new output until the job ends. Many clients
      can stream the same job at once, while it runs or after it finished. JOB is a job id, its
      first characters or the job's name. \`logs\` is an alias.

      With --json, every chunk of output is one JSON object on a line of stdout:
      {"type":"output","stream":"stdout","time":…,"offset":…,"nextOffset":…,"data":"…"} (plus
      "dataBase64" when the bytes are not valid UTF-8); jobworker's own notes in the log are
      {"type":"marker",…}; the last line is {"type":"status","job":{…}}.

      Exit status: when it followed the job to its end, the job's own: its exit code, or 128 + the
      signal's number if a signal ended it (137 for SIGKILL and OOM kills, 143 for SIGTERM); 1 for
      a lost job. With --no-follow: 0. 1 for an error of job-cli's (printed on stderr, starting
      "job-cli:"), 2 for a usage error.
    `,
    examples: [
      ['Follow a job to its end', '$0 stream 3f2a9c1e'],
      ['What it printed so far, with timestamps', '$0 logs --no-follow --timestamps 3f2a9c1e'],
      ['The last 20 lines of stderr, then follow', '$0 stream --stderr --tail 20 3f2a9c1e'],
      ['Output of the last 10 minutes', '$0 stream --since 10m 3f2a9c1e'],
      ['Wait for a job and use its exit code', '$0 stream 3f2a9c1e >/dev/null 2>&1; echo "job exited with $?"'],
    ],
  });

  follow = Option.Boolean('--follow', true, { description: 'keep streaming until the job ends (default; --no-follow prints what is there and exits)' });
  stdoutOnly = Option.Boolean('--stdout', false, { description: 'only the job\'s stdout' });
  stderrOnly = Option.Boolean('--stderr', false, { description: 'only the job\'s stderr' });
  timestamps = Option.Boolean('--timestamps', false, { description: 'start each line with the time it was captured (RFC 3339, UTC)' });
  tail = Option.String('--tail', { description: 'start N lines before the end of the output so far (0: only what comes next)' });
  since = Option.String('--since', { description: 'only output captured since: a duration ago (10m, 1h) or an RFC 3339 time' });
  job = Option.String({ name: 'JOB' });

  async runCommand(): Promise<number> {
    const streams: NonNullable<StreamLogsRequest['streams']> = [];
    if (this.stdoutOnly) streams.push('stdout');
    if (this.stderrOnly) streams.push('stderr');
    const request: StreamLogsRequest = { jobId: '', follow: this.follow, streams };
    if (this.tail !== undefined) request.tailLines = parseFlag('--tail', this.tail, (text) => parseInteger(text, 0, REQUEST_BOUNDS.maxTailLines));
    if (this.since !== undefined) request.sinceUnixMicros = parseFlag('--since', this.since, (text) => parseSince(text, new Date())).getTime() * 1000;

    const client = await this.connect();
    request.jobId = await this.resolveJobId(client, this.job);
    if (request.tailLines === 0) {
      // The API reads tail_lines 0 as "no tail" (the whole log); `--tail 0` means none of the
      // output so far, as with tail -n 0: start at the log's end now (a record boundary).
      delete request.tailLines;
      request.fromOffset = (await client.getJob(request.jobId)).log.sizeBytes;
    }
    const abort = new AbortController();
    const onPipeError = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') abort.abort();
    };
    // Kept to the end: a write error may be reported after the last write.
    this.context.stdout.on('error', onPipeError);
    this.context.stderr.on('error', onPipeError);
    let final: JobReport | null;
    try {
      const printer = new LogPrinter({ stdout: this.context.stdout, stderr: this.context.stderr, json: this.json, timestamps: this.timestamps, note: (text) => this.note(text) });
      final = await printLogs(client, request, printer, abort.signal);
      if (abort.signal.aborted) return EXIT_BROKEN_PIPE;
      if (final !== null) await printer.status(final);
    } catch (error) {
      if (abort.signal.aborted) return EXIT_BROKEN_PIPE;
      throw error;
    }
    if (!this.follow) return 0;
    if (final === null || !isFinished(final)) {
      this.note(`the stream ended before job ${request.jobId} did`);
      return 1;
    }
    return exitOfFollowedJob(final, (text) => this.note(text));
  }
}

/** The exit status for a job followed to its end, with a note where the code alone would puzzle. */
export function exitOfFollowedJob(job: JobReport, note: (text: string) => void): number {
  // The reason already says "lost: …".
  if (job.state === 'lost') note(`job ${job.id}: ${job.reason ?? 'lost: the daemon stopped tracking it'}`);
  else if (job.oomKilled) note(`job ${job.id}: ${job.reason ?? 'killed for exceeding its memory limit'}`);
  return exitStatusOf(job);
}
