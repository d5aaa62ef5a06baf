// Running the real `job-cli` binary (bin/job-cli.js) as a process, with a throwaway HOME so that it
// never reads or writes the real ~/.config, and without any JOBWORKER_* / XDG_* variables of ours.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';

export const CLI_BIN = path.join(__dirname, '..', '..', '..', 'bin', 'job-cli.js');
export const REPO_ROOT = path.join(__dirname, '..', '..', '..');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface CliOptions {
  /** HOME for the process; its config dir is HOME/.config/jobworker. */
  home: string;
  /** Extra environment (JOBWORKER_ADDR…); undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Killed (and the test failed) after this long. Default 60 s. */
  timeoutMs?: number;
  cwd?: string;
  /** Give the process a stdin pipe (child.stdin) instead of none. */
  stdin?: boolean;
}

/** Our environment minus what would change the CLI's behaviour, with HOME set. */
export function cliEnvironment(home: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('JOBWORKER_') && !name.startsWith('XDG_')) env[name] = value;
  }
  env.HOME = home;
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** A running CLI process whose output can be awaited as it arrives. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly result: Promise<CliResult>;
  #waiters: { stream: 'stdout' | 'stderr'; text: string | RegExp; resolve: () => void }[] = [];

  constructor(command: string, args: string[], options: CliOptions) {
    const started = performance.now();
    this.child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: cliEnvironment(options.home, options.env),
      stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (data: string) => this.#append('stdout', data));
    this.child.stderr!.setEncoding('utf8').on('data', (data: string) => this.#append('stderr', data));
    // A failed spawn (EAGAIN under load…) shows in the result instead of as a bare wrong exit code.
    this.child.on('error', (error) => this.#append('stderr', `[spawn error: ${error.message}]\n`));
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    this.result = once(this.child, 'close').then(([code, signal]) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      if (signal === 'SIGKILL' && ms >= timeoutMs) {
        throw new Error(`${path.basename(args[0] ?? command)} ${args.slice(1).join(' ')}: still running after ${timeoutMs} ms; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      }
      return { code: code as number | null, signal: signal as NodeJS.Signals | null, stdout: this.stdout, stderr: this.stderr, ms };
    });
  }

  #append(stream: 'stdout' | 'stderr', data: string): void {
    this[stream] += data;
    this.#waiters = this.#waiters.filter((waiter) => {
      const text = this[waiter.stream];
      if (waiter.stream !== stream || !(typeof waiter.text === 'string' ? text.includes(waiter.text) : waiter.text.test(text))) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves once the stream's output so far contains `text`; rejects if the process ends first. */
  waitFor(text: string | RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<void> {
    const has = () => (typeof text === 'string' ? this[stream].includes(text) : text.test(this[stream]));
    if (has()) return Promise.resolve();
    return Promise.race([
      new Promise<void>((resolve) => this.#waiters.push({ stream, text, resolve })),
      this.result.then((result) => {
        if (has()) return;
        throw new Error(`exited (${result.code ?? result.signal}) before printing ${String(text)} on ${stream}; stdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
      }),
    ]);
  }
}

/** Starts `job-cli ARGS…`. */
export function spawnCli(args: string[], options: CliOptions): CliProcess {
  return new CliProcess(process.execPath, [CLI_BIN, ...args], options);
}

/** Runs `job-cli ARGS…` to its end. */
export function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  return spawnCli(args, options).result;
}

/**
 * `job-cli ARGS…` on a pseudo-terminal (util-linux `script`), so that it sees a TTY on stdin and
 * stderr; what is written to child.stdin is typed on that terminal (\x03 is Ctrl-C).
 */
export function spawnCliOnTerminal(args: string[], options: CliOptions): CliProcess {
  const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
  // script(1) runs the command through $SHELL; `exec` makes the CLI the terminal's foreground process itself.
  // Without it dash stays in between, takes the Ctrl-C too and exits 130 on its own (bash happens to exec).
  const command = `exec ${[process.execPath, CLI_BIN, ...args].map(quote).join(' ')}`;
  const env = { ...options.env, SHELL: '/bin/sh' };
  return new CliProcess('script', ['--quiet', '--return', '--command', command, '/dev/null'], { ...options, env, stdin: true });
}

/** Runs a shell command line (e.g. one copied from the README) to its end. */
export function runShell(line: string, options: CliOptions): Promise<CliResult> {
  return new CliProcess('/bin/sh', ['-c', line], options).result;
}

/** A short description for assertion messages. */
export function show(result: CliResult): string {
  return `exit ${result.code ?? result.signal} after ${Math.round(result.ms)} ms\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}
