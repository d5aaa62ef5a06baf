// Baselines for the grpc benchmark that are processes of their own: a raw TLS 1.3 socket between two
// processes (the floor for log streaming), whole `job-cli` processes against `node -e 0` (the floor
// for the CLI's start-up), and the CLI as a log follower writing to a file.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

import type { TlsFilePaths } from '../src/pki';
import type { StreamReaderConfig, StreamReaderReport } from './stream-reader-child';

const REPO_ROOT = path.join(__dirname, '..', '..');
export const CLI_BIN = path.join(REPO_ROOT, 'bin', 'job-cli.js');

/** Seconds from spawn to exit of `node ARGS…`; rejects on a non-zero exit. */
export async function timeProcess(args: readonly string[], env: NodeJS.ProcessEnv, stdoutFd: number | 'ignore' = 'ignore'): Promise<number> {
  const start = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', stdoutFd, 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`node ${args.join(' ')} ended with ${code ?? signal}: ${stderr.trim()}`);
  return seconds;
}

/** The environment a `job-cli` process gets: our own, pointed at the daemon with `files`. */
export function cliEnvironment(address: string, files: TlsFilePaths, home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('JOBWORKER_')) env[name] = value;
  return {
    ...env,
    HOME: home,
    JOBWORKER_ADDR: address,
    JOBWORKER_CA: files.caPath,
    JOBWORKER_CERT: files.certificatePath,
    JOBWORKER_KEY: files.privateKeyPath,
  };
}

/** MB/s of `job-cli stream JOB` writing the job's whole output to a file (then checked for `bytes`). */
export async function cliFollowMBs(env: NodeJS.ProcessEnv, jobId: string, outPath: string, bytes: number): Promise<number> {
  const fd = openSync(outPath, 'w');
  let seconds: number;
  try {
    seconds = await timeProcess([CLI_BIN, 'stream', jobId], env, fd);
  } finally {
    closeSync(fd);
  }
  const size = statSync(outPath).size;
  if (size !== bytes) throw new Error(`job-cli stream wrote ${size} bytes of ${bytes}`);
  return bytes / 1e6 / seconds;
}

/**
 * The reading side of a streaming measurement in a process of its own (stream-reader-child.js):
 * start() once it has connected, then go() starts the clock and resolves with its report.
 */
export class StreamReaderProcess {
  readonly #child;
  readonly #lines: AsyncIterator<string>;
  /** Settles once the child has exited (listened for from the start: it may exit before its output is read). */
  readonly #exited: Promise<void>;
  #stderr = '';

  private constructor(config: StreamReaderConfig) {
    this.#child = spawn(process.execPath, [path.join(__dirname, 'stream-reader-child.js'), JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#exited = once(this.#child, 'exit').then(() => undefined, () => undefined);
    this.#child.stderr.setEncoding('utf8').on('data', (text: string) => (this.#stderr += text));
    this.#child.stdin.on('error', () => undefined); // a child that died first: its exit says why
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }

  /** A reader process, connected and waiting for go(). */
  static async start(config: StreamReaderConfig): Promise<StreamReaderProcess> {
    const reader = new StreamReaderProcess(config);
    try {
      const line = await reader.#nextLine();
      if (line !== 'ready') throw new Error(`stream-reader-child said ${JSON.stringify(line)} before it was ready`);
      return reader;
    } catch (error) {
      await reader.kill();
      throw error;
    }
  }

  /** Starts the reading (`argument`: the job id to follow) and waits for the report. */
  async go(argument = 'go'): Promise<StreamReaderReport> {
    this.#child.stdin.end(`${argument}\n`);
    const line = await this.#nextLine();
    await this.#exited;
    return JSON.parse(line) as StreamReaderReport;
  }

  /** Ends the child (if it still runs) and waits for it: no reader outlives a failed measurement. */
  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    await this.#exited;
  }

  async #nextLine(): Promise<string> {
    const next = await this.#lines.next();
    if (next.done === true) {
      await this.#exited;
      throw new Error(`stream-reader-child ended early: ${this.#stderr.trim() || `exit ${this.#child.exitCode ?? this.#child.signalCode}`}`);
    }
    return next.value;
  }
}

/** A TLS 1.3 server process (tls-floor-child.js) that sends `bytes` zeros to each client. */
export class TlsFloorServer {
  readonly #child;
  readonly port: Promise<number>;

  constructor(server: TlsFilePaths, bytes: number) {
    this.#child = spawn(process.execPath, [path.join(__dirname, 'tls-floor-child.js'), server.certificatePath, server.privateKeyPath, server.caPath, String(bytes)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.port = new Promise((resolve, reject) => {
      this.#child.once('error', reject);
      this.#child.once('exit', (code) => reject(new Error(`tls-floor-child exited with ${code} before listening`)));
      this.#child.stdout.setEncoding('utf8').once('data', (line: string) => resolve(Number(line.trim())));
    });
  }

  /** MB/s of one client, a process of its own (stream-reader-child.js), reading everything the server sends. */
  async readOnce(client: TlsFilePaths, bytes: number): Promise<number> {
    const reader = await StreamReaderProcess.start({ kind: 'tls', port: await this.port, files: client });
    const report = await reader.go().finally(() => reader.kill());
    if (report.bytes !== bytes) throw new Error(`raw TLS client got ${report.bytes} bytes of ${bytes}`);
    return bytes / 1e6 / report.seconds;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.#child.stdin.end();
    await exited;
  }
}
