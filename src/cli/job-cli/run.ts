import { createInterface } from 'node:readline';

import { Command, Option } from 'clipanion';

import type { JobworkerClient } from '../../client';
import { ClientError } from '../../client/basics';
import { CliError, EXIT_ERROR } from '../run';
import { isFinished, toJobReport, type JobReport } from './job-report';
import { LogPrinter, printLogs } from './log-output';
import { JobSpecCommand, LIMITS_DETAILS } from './start-request';
import { EXIT_BROKEN_PIPE, exitOfFollowedJob } from './stream';

/** What a Ctrl-C during `run` has led to ('left': we stopped following, see `leftWith`). */
type Phase = 'running' | 'asking' | 'stopping' | 'detached' | 'left';

const EXIT_INTERRUPTED = 130;

export class RunCommand extends JobSpecCommand {
  static override paths = [['run']];
  static override usage = Command.Usage({
    description: 'Run a job: start it, print its output, exit with its exit code',
    details: `
      Starts COMMAND as a job like \`start\`, prints its stdout on stdout and its stderr on stderr
      as it runs, and exits with the job's exit status when it ends.

      Ctrl-C: on a terminal, asks once whether to stop the job or to detach and leave it running
      (a second Ctrl-C while asking stops it). Without a terminal (scripts, CI), or on SIGTERM, it
      stops the job. While the job is being stopped, another Ctrl-C leaves at once (the daemon
      finishes the stop). If the reader of its output goes away (\`job-cli run … | head\`), it
      stops the job and exits 141.
${LIMITS_DETAILS}
      With --rm, once the job has ended and its output was printed, its record and log are
      deleted from the daemon (also when Ctrl-C or a gone reader stopped it; not after detaching
      or leaving before it stopped: then it is not over). A failed removal is reported on stderr
      and does not change the exit status.

      With --json, the first line of stdout is {"type":"started","job":{…}}, then the output as
      \`stream --json\` prints it, and last {"type":"status","job":{…}}.

      Exit status: the job's own: its exit code, or 128 + the signal's number if a signal ended it
      (143 after a stop with SIGTERM, 137 for SIGKILL and OOM kills); 0 after detaching; 130 when
      interrupted while stopping; 141 when its reader went away. 1 for an error of job-cli's (printed on stderr, starting
      "job-cli:"), 2 for a usage error (then no job was started).
    `,
    examples: [
      ['Run a command with limits', "$0 run --cpu 0.5 --memory 128M -- sh -c 'echo hello; sleep 1; echo bye'"],
      ['Use its exit code', '$0 run -- make test && echo passed'],
      ['Keep only its stdout', '$0 run -- ./report.sh 2>/dev/null > report.txt'],
    ],
  });

  timestamps = Option.Boolean('--timestamps', false, { description: 'start each line with the time it was captured (RFC 3339, UTC)' });
  rm = Option.Boolean('--rm', false, { description: 'delete the job\'s record and log once it has ended and its output was printed' });

  async runCommand(): Promise<number> {
    const request = this.startRequest();
    const client = await this.connect();
    const started = toJobReport(await client.startJob(request));
    const id = started.id;

    const abort = new AbortController();
    let phase: Phase = 'running';
    const stdin = this.context.stdin as NodeJS.ReadableStream & { isTTY?: boolean };
    const stderr = this.context.stderr as NodeJS.WritableStream & { isTTY?: boolean };
    const interactive = stdin.isTTY === true && stderr.isTTY === true;
    let prompt: ReturnType<typeof createInterface> | undefined;
    let leftWith = EXIT_INTERRUPTED;
    const leave = (exitCode: number) => {
      phase = 'left';
      leftWith = exitCode;
      abort.abort();
    };

    const stop = () => {
      prompt?.close();
      prompt = undefined;
      phase = 'stopping';
      this.note(`stopping job ${id}…`);
      client.stopJob(id).catch((error: unknown) => {
        const why = error instanceof ClientError ? error.details : String(error);
        this.note(`could not stop job ${id}: ${why}`);
        leave(EXIT_ERROR);
      });
    };
    const detach = () => {
      prompt?.close();
      prompt = undefined;
      phase = 'detached';
      this.note(`detached; job ${id} keeps running (\`job-cli stream ${id}\` follows it, \`job-cli stop ${id}\` stops it)`);
      abort.abort();
    };
    const ask = () => {
      phase = 'asking';
      prompt = createInterface({ input: stdin, output: stderr });
      prompt.on('SIGINT', stop); // Ctrl-C while asking: the terminal is in raw mode, readline sees it
      prompt.question(`\n${this.cli.binaryName}: stop job ${id}, or detach and leave it running? [S/d] `, (answer) => {
        if (phase !== 'asking') return;
        if (/^\s*d/i.test(answer)) detach();
        else stop();
      });
    };
    const onInterrupt = () => {
      if (phase === 'running') {
        if (interactive) ask();
        else stop();
      } else if (phase === 'asking') stop();
      else if (phase === 'stopping') {
        this.note(`not waiting for job ${id} to stop`);
        leave(EXIT_INTERRUPTED);
      }
    };
    const onTerminate = () => {
      if (phase === 'running' || phase === 'asking') stop();
    };
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onTerminate);

    let final: JobReport | null;
    const printer = new LogPrinter({ stdout: this.context.stdout, stderr: this.context.stderr, json: this.json, timestamps: this.timestamps, note: (text) => this.note(text) });
    // Our reader went away (`job-cli run … | head`): the job was tied to this run, so stop it,
    // dropping its output meanwhile, and exit 141 like a process killed by SIGPIPE.
    let pipeBroken = false;
    const onPipeError = (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' || pipeBroken) return;
      pipeBroken = true;
      if (phase === 'running' || phase === 'asking') stop();
    };
    this.context.stdout.on('error', onPipeError);
    if (this.json) this.print(JSON.stringify({ type: 'started', job: started }));
    try {
      final = await printLogs(client, { jobId: id, follow: true }, printer, abort.signal);
    } catch (error) {
      if (error instanceof ClientError) {
        this.note(`job ${id} may still be running: \`job-cli query ${id}\` shows it`);
      }
      throw error;
    } finally {
      process.off('SIGINT', onInterrupt);
      process.off('SIGTERM', onTerminate);
      prompt?.close();
    }
    // Phase is changed by the handlers above, behind the type checker's back.
    const ended = phase as Phase;
    if (ended === 'detached') return 0;
    if (ended === 'left') return leftWith;
    if (final === null || !isFinished(final)) {
      if (pipeBroken) return EXIT_BROKEN_PIPE;
      throw new CliError(`the stream ended before job ${id} did`, `\`job-cli query ${id}\` shows it`);
    }
    if (!pipeBroken) await printer.status(final);
    if (this.rm) await this.remove(client, id);
    return pipeBroken ? EXIT_BROKEN_PIPE : exitOfFollowedJob(final, (text) => this.note(text));
  }

  /** --rm: the job is over and its output printed; a failure is told, not fatal (the job's status matters more). */
  private async remove(client: JobworkerClient, id: string): Promise<void> {
    try {
      await client.removeJob(id);
    } catch (error) {
      const why = error instanceof ClientError ? error.details : String(error);
      this.note(`could not remove job ${id}: ${why} (\`job-cli rm ${id}\` removes it)`);
    }
  }
}
