// The Worker: the library the daemon serves and Node programs embed. Owns the job registry, the
// state directory and the cgroup driver.
import { randomUUID } from 'node:crypto';

import { openCgroupDriver, type CgroupDriverOptions } from '../cgroup';
import { nodeCgroupFs, type CgroupFs } from '../cgroup/cgroup-fs';
import type { CgroupDriver, Limits } from '../cgroup/types';
import { JobworkerError, NotFoundError, ValidationError } from '../errors';
import { fsOps } from '../native';
import { Job, type JobContext, type JobStatus, type StopResult } from './job';
import { resolveJobSpec, resolveJobUser, type JobSpec, type JobUser } from './job-spec';
import { isFinal, type JobState } from './job-state';
import { recover, type RecoveryReport } from './recovery';
import { StateLock } from './state-lock';
import { StateStore } from './state-store';

export interface WorkerDefaults {
  /** Limits applied where a job's own limits leave a field unset. */
  limits?: Limits;
  /** Cap on each job's log file. Default 1 GiB. */
  logMaxBytes?: number;
  /** RLIMIT_NOFILE soft limit for jobs (the hard limit is inherited). Default 1024, like systemd. */
  nofileSoft?: number;
  /** Grace period of stop() before the cgroup is killed. Default 10 s. */
  stopGraceMs?: number;
  /** The user jobs run as unless their spec names one. Default: this process's own (root). */
  user?: JobUser;
}

export interface RetentionPolicy {
  /** Finished jobs kept (oldest removed first). Default 1000. */
  maxFinishedJobs?: number;
  /** Finished jobs older than this are removed. Default: kept until removed or pushed out by the count. */
  maxAgeMs?: number;
}

export interface WorkerOptions {
  /** Job records (a journal) and logs live here: see state-store.ts. */
  stateDir: string;
  /**
   * Where job cgroups go: `root` (a delegated cgroup path, the same in every hierarchy) or
   * `rootName` (created beneath this process's own cgroup; default "jobworker"). See docs/cgroups.md.
   */
  cgroup?: CgroupDriverOptions;
  /** Or a cgroup driver of your own (unusual hosts). */
  cgroupDriver?: CgroupDriver;
  defaults?: WorkerDefaults;
  retention?: RetentionPolicy;
  /** Jobs running at once; start() beyond it fails with resource-exhausted. Default 10,000. */
  maxRunningJobs?: number;
  /** Where warnings go (structured); default: process.emitWarning. */
  warn?: (message: string, details: Record<string, unknown>) => void;
}

export interface ListFilter {
  owner?: string;
  states?: readonly JobState[];
}

export interface JobEvent {
  status: JobStatus;
  previousState: JobState;
  /** For `running`: milliseconds from start() to the process running. */
  startLatencyMs?: number;
}

const DEFAULTS = {
  logMaxBytes: 1 << 30,
  nofileSoft: 1024,
  stopGraceMs: 10_000,
  maxFinishedJobs: 1000,
  maxRunningJobs: 10_000,
};

/**
 * cgroupfs as the cgroup drivers see it, with batches run by the addon on the libuv threadpool: a
 * job's cgroups are created, read and removed in three trips off the JS thread.
 */
const BATCHED_CGROUP_FS: CgroupFs = { ...nodeCgroupFs, batch: fsOps };

function warnerOf(options: WorkerOptions): (message: string, details: Record<string, unknown>) => void {
  return options.warn ?? ((message, details) => process.emitWarning(`${message} ${JSON.stringify(details)}`, 'JobworkerWarning'));
}

export class Worker {
  readonly stateDir: string;
  /** What the last open() found and cleaned up. */
  readonly recovery: RecoveryReport;
  /** The cgroup driver jobs run under (mode, root). */
  readonly cgroupDriver: CgroupDriver;
  #store: StateStore;
  #lock: StateLock;
  #options: WorkerOptions;
  #jobs = new Map<string, Job>();
  #startTimes = new Map<string, bigint>();
  #listeners = new Set<(event: JobEvent) => void>();
  #releaseRoot: (() => Promise<void>) | undefined;
  /** Ids of finished jobs, the earliest finished first (ids removed since are skipped lazily). */
  #finished: string[] = [];
  #defaultUser: JobUser | null;
  #finishedCount = 0;
  #running = 0;
  #closing = false;
  #ctx: JobContext;

  private constructor(options: WorkerOptions, store: StateStore, lock: StateLock, driver: CgroupDriver, recovery: RecoveryReport) {
    this.stateDir = options.stateDir;
    this.#options = options;
    this.#store = store;
    this.#lock = lock;
    this.cgroupDriver = driver;
    this.recovery = recovery;
    const warn = warnerOf(options);
    this.#defaultUser = options.defaults?.user === undefined ? null : resolveJobUser('defaults.user', options.defaults.user);
    this.#ctx = {
      store,
      driver,
      createInSpawn: options.cgroupDriver === undefined && options.cgroup?.fs === undefined,
      logMaxBytes: options.defaults?.logMaxBytes ?? DEFAULTS.logMaxBytes,
      nofileSoft: options.defaults?.nofileSoft ?? DEFAULTS.nofileSoft,
      defaultGraceMs: options.defaults?.stopGraceMs ?? DEFAULTS.stopGraceMs,
      onStateChange: (job, previous) => this.#stateChanged(job, previous),
      warn,
    };
    // Oldest first, as list() promises.
    const records = [...recovery.records].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    for (const record of records) this.#jobs.set(record.id, Job.restore(this.#ctx, record));
    const byFinish = records.filter((r) => r.finishedAt !== null).sort((a, b) => (a.finishedAt! < b.finishedAt! ? -1 : a.finishedAt! > b.finishedAt! ? 1 : 0));
    this.#finished = byFinish.map((r) => r.id);
    this.#finishedCount = this.#finished.length;
  }

  /** Opens the state directory (one worker per directory), recovers from a crash, sweeps orphans. */
  static async open(options: WorkerOptions): Promise<Worker> {
    if (typeof options?.stateDir !== 'string' || options.stateDir === '') {
      throw new ValidationError('stateDir', 'is required');
    }
    if (options.defaults?.user !== undefined) resolveJobUser('defaults.user', options.defaults.user); // before touching anything
    const store = new StateStore(options.stateDir, {
      createFiles: (paths) => fsOps(paths.map((file) => ({ op: 'create', path: file }))),
    });
    await store.init();
    const lock = await StateLock.acquire(options.stateDir);
    try {
      const opened = options.cgroupDriver === undefined ? await openCgroupDriver({ fs: BATCHED_CGROUP_FS, ...options.cgroup }) : undefined;
      const driver = options.cgroupDriver ?? opened!;
      const recovery = await recover(store, driver, warnerOf(options));
      await store.rewrite(recovery.records); // lost jobs recorded, the journal compacted
      const worker = new Worker(options, store, lock, driver, recovery);
      worker.#releaseRoot = opened && (() => opened.releaseRoot());
      await worker.#applyRetention();
      return worker;
    } catch (error) {
      await store.close();
      await lock.release();
      throw error;
    }
  }

  /** Starts a job. Resolves once its process runs; a bad spec or failed spawn throws and leaves nothing. */
  async start(spec: JobSpec): Promise<Job> {
    if (this.#closing) throw new JobworkerError('unavailable', 'the worker is shutting down');
    const resolved = resolveJobSpec(spec);
    resolved.limits = { ...this.#options.defaults?.limits, ...resolved.limits };
    if (resolved.user === null) resolved.user = this.#defaultUser;
    const max = this.#options.maxRunningJobs ?? DEFAULTS.maxRunningJobs;
    if (this.#running >= max) {
      throw new JobworkerError('resource-exhausted', `${this.#running} jobs are running, the limit is ${max}`);
    }
    const id = randomUUID();
    this.#running++;
    this.#startTimes.set(id, process.hrtime.bigint());
    try {
      return await Job.launch(this.#ctx, id, resolved, (job) => this.#jobs.set(id, job));
    } catch (error) {
      this.#jobs.delete(id);
      this.#startTimes.delete(id);
      this.#running--;
      throw error;
    }
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  /** Like get(), but throws NotFoundError. */
  job(id: string): Job {
    const job = this.#jobs.get(id);
    if (job === undefined) throw new NotFoundError(`job ${id} not found`);
    return job;
  }

  /** Jobs, oldest first, optionally filtered. */
  list(filter: ListFilter = {}): Job[] {
    const jobs: Job[] = [];
    for (const job of this.#jobs.values()) {
      if (filter.owner !== undefined && job.owner !== filter.owner) continue;
      if (filter.states !== undefined && !filter.states.includes(job.state)) continue;
      jobs.push(job);
    }
    return jobs;
  }

  /** Removes a finished job's record and log. */
  async remove(id: string): Promise<void> {
    const job = this.job(id);
    if (!isFinal(job.state)) {
      throw new JobworkerError('failed-precondition', `job ${id} is ${job.state}; stop it before removing it`);
    }
    this.#jobs.delete(id);
    this.#finishedCount--; // its id leaves #finished lazily
    await this.#store.remove(id, job.logBytes);
  }

  /** Calls `listener` after every job state change (persisted first). Returns the unsubscribe. */
  subscribe(listener: (event: JobEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get runningJobs(): number {
    return this.#running;
  }

  /**
   * Stops accepting jobs; by default stops every running job (recorded as stopped by
   * "worker shutdown") and removes the (then empty) cgroup root. With `stopJobs: false` they keep
   * running and are recovered as lost (and killed) by the next open().
   */
  async close(options: { stopJobs?: boolean; graceMs?: number } = {}): Promise<StopResult[]> {
    this.#closing = true;
    let results: StopResult[] = [];
    if (options.stopJobs ?? true) {
      const active = [...this.#jobs.values()].filter((job) => !isFinal(job.state));
      results = await Promise.all(
        active.map((job) => job.stop({ by: 'worker shutdown', graceMs: options.graceMs }).catch(() => job.wait().then((status) => ({ alreadyFinished: true, status })))),
      );
    }
    if ((options.stopJobs ?? true) && this.#releaseRoot !== undefined) {
      // A clean shutdown leaves no cgroup behind, not even the (empty) root.
      await this.#releaseRoot().catch((error: unknown) => this.#ctx.warn('cgroup root not removed', { error: String(error) }));
    }
    await this.#store.close();
    await this.#lock.release();
    return results;
  }

  #stateChanged(job: Job, previousState: JobState): void {
    let startLatencyMs: number | undefined;
    if (job.state === 'running') {
      const started = this.#startTimes.get(job.id);
      if (started !== undefined) startLatencyMs = Number(process.hrtime.bigint() - started) / 1e6;
      this.#startTimes.delete(job.id);
    }
    if (isFinal(job.state) && !isFinal(previousState)) {
      this.#running--;
      this.#finished.push(job.id);
      this.#finishedCount++;
      void this.#applyRetention();
    }
    if (this.#listeners.size === 0) return; // a status snapshot is a deep copy: only for someone
    const event: JobEvent = { status: job.status(), previousState };
    if (startLatencyMs !== undefined) event.startLatencyMs = startLatencyMs;
    for (const listener of this.#listeners) listener(event);
  }

  /** Removes the oldest finished jobs beyond the count limit, and those past the age limit. */
  #applyRetention(): Promise<unknown> {
    const removals: Promise<unknown>[] = [];
    const maxCount = this.#options.retention?.maxFinishedJobs ?? DEFAULTS.maxFinishedJobs;
    const maxAge = this.#options.retention?.maxAgeMs;
    const now = Date.now();
    while (this.#finished.length > 0) {
      const oldest = this.#jobs.get(this.#finished[0]!);
      if (oldest === undefined) {
        this.#finished.shift(); // removed meanwhile
        continue;
      }
      const tooOld = maxAge !== undefined && now - (oldest.finishedAt?.getTime() ?? now) > maxAge;
      if (this.#finishedCount <= maxCount && !tooOld) break;
      this.#finished.shift();
      this.#finishedCount--;
      this.#jobs.delete(oldest.id);
      removals.push(this.#store.remove(oldest.id, oldest.logBytes).catch((error: unknown) => this.#ctx.warn('could not remove an old job', { job: oldest.id, error: String(error) })));
    }
    return Promise.all(removals);
  }
}
