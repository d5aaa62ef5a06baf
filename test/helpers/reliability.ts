// The reliability suite's view of a real daemon process (bin/job-worker.js): started with a test
// PKI, its own state directory and cgroup root, and a config; watched from outside through
// /proc/<pid>, its metrics listener and the cgroup filesystem, so that leaks are measured where
// they would show in production, not inside the process under test.
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { JobworkerClient } from '../../src/client';
import type { IdentityLimitsConfig } from '../../src/daemon/config';
import type { Role } from '../../src/pki';
import { defaultRootName } from '../../src/worker';
import { findCgroupDirs } from './cgroup-jobs';
import { createTestPki, type TestPki } from './pki';
import { zombiesOf } from './proc';
import { SpawnedDaemon, WORKER_BIN, type DaemonLine } from './spawned-daemon';

export { eventually } from './poll';

/** Every cgroup and temporary directory of a reliability run carries this prefix and the runner's pid. */
export const RELIABILITY_PREFIX = `jobworker-rel-${process.pid}`;

export interface DaemonConfigFile {
  retention?: { maxFinishedJobs?: number; maxAgeMs?: number };
  maxRunningJobs?: number;
  identityLimits?: IdentityLimitsConfig;
  identityOverrides?: Record<string, IdentityLimitsConfig>;
  cgroupRootName?: string;
  defaults?: { cpu?: number; memoryBytes?: number; pids?: number; logMaxBytes?: number; stopGraceMs?: number };
  shutdown?: { stopJobs?: boolean; graceMs?: number };
  maxStreamsPerIdentity?: number;
  maxUnreadWatchJobs?: number;
  connections?: { max?: number; maxPerAddress?: number; handshakeTimeoutMs?: number; maxStreamsPerConnection?: number };
  fileDescriptors?: { reserve?: number; identityJobShare?: number };
  logScans?: { max?: number; maxPerIdentity?: number };
  refusalLogIntervalMs?: number;
}

export interface ReliabilityDaemonOptions {
  /** Short name, part of the cgroup root and directory names. */
  label: string;
  /** Parent of the state directory (default: a fresh directory under `workDir`). */
  stateDir?: string;
  config?: DaemonConfigFile;
  /**
   * Where its jobs' cgroups go: 'own' (default) a root name of its own with this run's prefix;
   * 'derived' none configured, so the daemon derives it from its state directory.
   */
  placement?: 'own' | 'derived';
  /** Added to the daemon's environment. */
  env?: NodeJS.ProcessEnv;
  pki?: TestPki;
  /** RLIMIT_NOFILE (soft and hard) of the daemon process, as systemd's LimitNOFILE= would set it (util-linux prlimit). */
  nofile?: number;
}

export interface ProcSample {
  fds: number;
  rssBytes: number;
  threads: number;
}

let seq = 0;

/**
 * A daemon process for reliability scenarios. `restart()` starts a new process on the same state
 * directory, cgroup root and certificates (after a crash or a clean stop).
 */
export class ReliabilityDaemon {
  readonly label: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly cgroupRootName: string;
  readonly pki: TestPki;
  #ownsPki: boolean;
  #configPath: string;
  #env: NodeJS.ProcessEnv;
  #nofile: number | undefined;
  #serverFiles!: Awaited<ReturnType<TestPki['server']>>;
  #clients: JobworkerClient[] = [];
  process!: SpawnedDaemon;
  port = 0;
  metricsAddress = '';

  private constructor(workDir: string, options: ReliabilityDaemonOptions, pki: TestPki, ownsPki: boolean) {
    this.label = options.label;
    this.dir = mkdtempSync(path.join(workDir, `${options.label}-`));
    this.stateDir = options.stateDir ?? path.join(this.dir, 'state');
    const derived = options.placement === 'derived';
    this.cgroupRootName = options.config?.cgroupRootName ?? (derived ? defaultRootName(this.stateDir) : `${RELIABILITY_PREFIX}-${options.label}-${seq++}`);
    this.pki = pki;
    this.#ownsPki = ownsPki;
    this.#env = options.env ?? {};
    this.#nofile = options.nofile;
    this.#configPath = path.join(this.dir, 'config.json');
    const delegated = process.env.JOBWORKER_TEST_CGROUP_ROOT;
    const placement = derived ? {} : delegated === undefined || delegated === '' ? { cgroupRootName: this.cgroupRootName } : { cgroupRoot: path.posix.join(delegated, this.cgroupRootName) };
    writeFileSync(this.#configPath, JSON.stringify({ ...options.config, ...placement }, null, 2));
  }

  static async start(workDir: string, options: ReliabilityDaemonOptions): Promise<ReliabilityDaemon> {
    const pki = options.pki ?? (await createTestPki());
    const daemon = new ReliabilityDaemon(workDir, options, pki, options.pki === undefined);
    daemon.#serverFiles = await pki.server(undefined, `server-${daemon.label}`);
    await daemon.#spawn();
    return daemon;
  }

  /**
   * Starts a daemon that is expected to refuse to start: resolves with its exit and what it said
   * (its directories are removed).
   */
  static async startRefused(
    workDir: string,
    options: ReliabilityDaemonOptions,
  ): Promise<{ code: number | null; stderr: string; lines: DaemonLine[]; cgroupRootName: string; cgroupsLeft: string[] }> {
    const pki = options.pki ?? (await createTestPki());
    const daemon = new ReliabilityDaemon(workDir, options, pki, options.pki === undefined);
    daemon.#serverFiles = await pki.server(undefined, `server-${daemon.label}`);
    daemon.process = new SpawnedDaemon(daemon.#launch());
    let exit: { code: number | null } = { code: null };
    try {
      exit = await withTimeout(daemon.process.exited, 60_000, 'a refused daemon start');
    } finally {
      if (daemon.alive) await daemon.stop('SIGKILL');
    }
    // What its root holds now, before close() would remove anything: a refused start must leave nothing.
    const cgroupsLeft = daemon.allCgroups();
    await daemon.close();
    return { code: exit.code, stderr: daemon.process.stderrText, lines: daemon.process.lines, cgroupRootName: daemon.cgroupRootName, cgroupsLeft };
  }

  get pid(): number {
    return this.process.child.pid!;
  }

  get alive(): boolean {
    return this.process.child.exitCode === null && this.process.child.signalCode === null;
  }

  async #spawn(): Promise<void> {
    this.process = new SpawnedDaemon(this.#launch());
    const serving = await withTimeout(this.process.waitFor((l) => l.msg === 'serving'), 60_000, 'daemon start');
    await withTimeout(this.process.waitFor((l) => l.msg === 'ready'), 60_000, 'daemon ready');
    this.port = Number(String(serving.listen).split(':').pop());
    this.metricsAddress = String(serving.metrics);
  }

  #launch(): ChildProcess {
    // prlimit execs the command: the child's pid is the daemon's.
    const prefix = this.#nofile === undefined ? [] : [`--nofile=${this.#nofile}:${this.#nofile}`, '--', process.execPath];
    return spawn(
      this.#nofile === undefined ? process.execPath : 'prlimit',
      [
        ...prefix,
        WORKER_BIN,
        '--config', this.#configPath,
        '--listen', '127.0.0.1:0',
        '--metrics-listen', '127.0.0.1:0',
        '--state-dir', this.stateDir,
        '--tls-ca', this.#serverFiles.caPath,
        '--tls-cert', this.#serverFiles.certificatePath,
        '--tls-key', this.#serverFiles.privateKeyPath,
        '--log-format', 'json',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.#env } },
    );
  }

  /** A new daemon process on the same state directory (the old one must be gone). */
  async restart(): Promise<void> {
    if (this.alive) throw new Error('restart: the daemon is still running');
    await this.#spawn();
  }

  /** A connected client with a certificate for `name` carrying `roles`; closed by stop(). */
  async client(name: string, roles: Role[], callTimeoutMs = 60_000): Promise<JobworkerClient> {
    const files = await this.pki.client({ name, roles });
    const client = await JobworkerClient.connect({ address: `localhost:${this.port}`, tls: files, callTimeoutMs });
    this.#clients.push(client);
    return client;
  }

  /** Certificate files for `name` (for clients run in other processes). */
  clientFiles(name: string, roles: Role[]): ReturnType<TestPki['client']> {
    return this.pki.client({ name, roles });
  }

  closeClients(): void {
    for (const client of this.#clients.splice(0)) client.close();
  }

  /** The daemon's open fds, resident memory and threads, read from /proc. */
  sample(): ProcSample {
    return procSample(this.pid);
  }

  /** The daemon's Prometheus metrics: `name{labels}` → value. */
  async metrics(): Promise<Map<string, number>> {
    const response = await fetch(`http://${this.metricsAddress}/metrics`, { signal: AbortSignal.timeout(10_000) });
    return parseMetrics(await response.text());
  }

  async activeStreams(): Promise<number> {
    return sumMetric(await this.metrics(), 'jobworker_active_streams');
  }

  /** Children of the daemon that are zombies. */
  zombies(): number[] {
    return zombiesOf(this.pid);
  }

  /** Job cgroup directories (in any hierarchy) beneath this daemon's cgroup root: in a slice, or (older layout) in jobs/. */
  jobCgroups(): string[] {
    return findCgroupDirs(`/${this.cgroupRootName}/jobs/`).filter((dir) => JOB_CGROUP.test(dir));
  }

  /** Identity slices (in any hierarchy) beneath this daemon's cgroup root: kept while idle, gone at a clean stop. */
  sliceCgroups(): string[] {
    return findCgroupDirs(`/${this.cgroupRootName}/jobs/`).filter((dir) => /\/jobs\/identity\.[^/]+$/.test(dir));
  }

  /** Every cgroup directory of this daemon's root, the root included. */
  allCgroups(): string[] {
    return findCgroupDirs(`/${this.cgroupRootName}`);
  }

  /** Sends `signal` and waits for the process to end. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.closeClients();
    if (this.alive) this.process.child.kill(signal);
    const exit = await Promise.race([this.process.exited, delay(timeoutMs).then(() => undefined)]);
    if (exit === undefined) {
      this.process.child.kill('SIGKILL');
      throw new Error(`daemon ${this.label} did not exit within ${timeoutMs} ms of ${signal}`);
    }
    return exit;
  }

  /**
   * Stops the daemon (SIGTERM: jobs stopped, cgroup root removed) and removes its directories.
   * Returns the cgroups that were left behind (none expected).
   */
  async close(): Promise<string[]> {
    try {
      if (this.alive) await this.stop('SIGTERM');
    } catch {
      // already reported by stop(); the sweep below still runs
    }
    const left = this.allCgroups();
    if (this.#ownsPki) this.pki.remove();
    rmSync(this.dir, { recursive: true, force: true });
    return left;
  }

  /** Daemon log lines with this message. */
  linesWith(msg: string): Record<string, unknown>[] {
    return this.process.lines.filter((l) => l.msg === msg);
  }
}

const JOB_CGROUP = /\/jobs\/(identity\.[^/]+\/[^/]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export function procSample(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssBytes: field('VmRSS') * 1024, threads: field('Threads') };
}

export function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** Sum of every series of metric `name` (all label sets). */
export function sumMetric(metrics: Map<string, number>, name: string): number {
  let total = 0;
  for (const [key, value] of metrics) if (key === name || key.startsWith(`${name}{`)) total += value;
  return total;
}

/**
 * Socket fds of `pid` that the kernel no longer lists as live TCP or unix sockets: the peer is gone
 * and the connection closed, but the process never closed its end.
 */
export function deadSockets(pid: number): string[] {
  const live = new Set<string>();
  for (const table of ['tcp', 'tcp6', 'unix']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const inode = table === 'unix' ? fields[6] : fields[9];
      if (inode !== undefined && inode !== '0') live.add(inode);
    }
  }
  const dead: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined && !live.has(inode)) dead.push(fd);
  }
  return dead;
}

/** Rejects with a message naming `what` when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise,
      delay(ms, undefined, { signal: timer.signal }).then(() => {
        throw new Error(`${what}: no result within ${ms} ms`);
      }),
    ]);
  } finally {
    timer.abort();
  }
}

/** Runs `worker(i)` for i in [0, count) with at most `concurrency` at once. */
export async function pool(count: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await worker(next++);
    }),
  );
}

/** A deterministic PRNG (mulberry32), so a failing run can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

export function makeWorkDir(parent: string, label: string): string {
  return mkdtempSync(path.join(parent, `${label}-`));
}
