// One job: launches it, follows its process to a final state, stops it, serves its logs and status.
import { setTimeout as delay } from 'node:timers/promises';

import type { CgroupDriver, CgroupStats, JobCgroup, Limits } from '../cgroup/types';
import { JobworkerError } from '../errors';
import { CompleteLog, followLog, type FollowOptions, type LogSource } from '../logs/follower';
import type { LogRecord } from '../logs/reader';
import { SpawnError, spawnProcessAsync, type ExitInfo, type NativeProcess } from '../native';
import type { JobUser, ResolvedJobSpec } from './job-spec';
import { finalStateOf, isFinal, type JobOutcome, type JobState } from './job-state';
import { LiveLog } from './live-log';
import type { JobLogInfo, JobRecord, StateStore } from './state-store';

/** A job's status as callers see it: a snapshot, never a live object. */
export interface JobStatus {
  id: string;
  owner: string;
  command: string;
  args: string[];
  cwd: string;
  limits: Limits;
  /** The user the job runs as; null: the daemon's own. */
  user: JobUser | null;
  state: JobState;
  pid: number | null;
  /** How it ended; null until the state is final. */
  outcome: JobOutcome | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  log: JobLogInfo;
  /** Final resource use (finished jobs); use Job.stats() for a live reading. */
  stats: CgroupStats | null;
}

export interface StopOptions {
  /** First signal, sent to every process of the job. Default SIGTERM. */
  signal?: NodeJS.Signals;
  /** How long to wait after it before killing the whole cgroup. */
  graceMs?: number;
  /** Who asks (kept in the outcome: "stopped by …"). */
  by?: string;
}

export interface StopResult {
  /** True when the job had already finished (or was finishing by itself): nothing was signalled. */
  alreadyFinished: boolean;
  status: JobStatus;
}

export type LogOptions = FollowOptions;

/** What a job needs from its worker. */
export interface JobContext {
  store: StateStore;
  driver: CgroupDriver;
  /**
   * The driver works on the real cgroupfs: its create ops can run in the spawn's own threadpool
   * trip. (Not with a cgroup filesystem of the caller's, which the addon cannot see.)
   */
  createInSpawn: boolean;
  logMaxBytes: number;
  nofileSoft: number;
  defaultGraceMs: number;
  /** Called after every state change, once the new state is persisted. */
  onStateChange(job: Job, previous: JobState): void;
  /** Problems that must not fail the job but should be seen (a cgroup that would not go away…). */
  warn(message: string, details: Record<string, unknown>): void;
}

// A stopped job's processes get this long after cgroup.kill to disappear before we stop waiting.
const KILL_WAIT_MS = 10_000;

export class Job {
  readonly id: string;
  #ctx: JobContext;
  #record: JobRecord;
  #native: NativeProcess | null = null;
  #cgroup: JobCgroup | null = null;
  #log: LogSource;
  #exitSeen = false;
  #stoppedBy: string | null = null;
  #stopping: Promise<StopResult> | null = null;
  #launched: Promise<void> = Promise.resolve();
  #launchError: unknown = undefined;
  #finished: Promise<void>;
  #markFinished!: () => void;

  private constructor(ctx: JobContext, record: JobRecord, log: LogSource) {
    this.id = record.id;
    this.#ctx = ctx;
    this.#record = record;
    this.#log = log;
    this.#finished = new Promise((resolve) => (this.#markFinished = resolve));
    if (isFinal(record.state)) this.#markFinished();
  }

  /** A job known from its record (finished, or recovered after a restart). */
  static restore(ctx: JobContext, record: JobRecord): Job {
    return new Job(ctx, record, new CompleteLog(ctx.store.logPath(record.id), record.log.bytes));
  }

  /**
   * Creates the cgroup, spawns the process into it and records the job as running. On any failure
   * nothing is left behind and the error is thrown. `registered` is called as soon as the job
   * exists (still starting), so a concurrent stop can find it.
   */
  static async launch(ctx: JobContext, id: string, spec: ResolvedJobSpec, registered: (job: Job) => void): Promise<Job> {
    const now = new Date().toISOString();
    const record: JobRecord = {
      version: 1,
      id,
      spec,
      state: 'starting',
      outcome: null,
      pid: null,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      log: { bytes: 0, droppedBytes: 0, truncated: false, writeError: null },
      stats: null,
    };
    const job = new Job(ctx, record, new CompleteLog(ctx.store.logPath(id), 0));
    let launched!: () => void;
    job.#launched = new Promise((resolve) => (launched = resolve));
    registered(job);
    try {
      await job.#start();
    } catch (error) {
      job.#launchError = error;
      job.#markFinished();
      throw error;
    } finally {
      launched();
    }
    return job;
  }

  async #start(): Promise<void> {
    const { store, driver } = this.#ctx;
    const spec = this.#record.spec;
    let cgroup: JobCgroup | undefined; // ours once created: destroyed if the start fails
    try {
      // On the real cgroupfs the addon creates the cgroups in the spawn's own threadpool trip and
      // settles them on its capture thread at the exit; with a cgroup filesystem of the caller's,
      // the driver does it step by step.
      const planned = this.#ctx.createInSpawn ? await driver.plan(this.id, spec.limits, spec.cwd) : undefined;
      cgroup = planned?.cgroup ?? (await driver.create(this.id, spec.limits, spec.cwd));
      // Taken before the spawn: the process may exit (and be reaped, with its own timestamp) before
      // spawnProcess() even returns.
      const startedAt = new Date();
      const spareLog = store.takeSpareLog();
      try {
        // Off the JS thread: the daemon goes on serving while the child gets to exec.
        this.#native = await spawnProcessAsync({
          command: spec.command,
          args: spec.args,
          env: spec.env,
          cwd: spec.cwd,
          setupOps: planned?.createOps,
          exitOps: planned?.cgroup.settleOps(),
          ...cgroup.placementPaths(),
          logPath: store.logPath(this.id),
          logRecycleFrom: spareLog,
          logMaxBytes: this.#ctx.logMaxBytes,
          nofileSoft: this.#ctx.nofileSoft,
          uid: spec.user?.uid,
          gid: spec.user?.gid,
          groups: spec.user ? (spec.user.groups ?? []) : undefined,
        });
      } catch (error) {
        if (planned !== undefined && error instanceof SpawnError && error.stage === 'setup') {
          // The addon undid what it created; what it did not create (a directory that was there
          // already) is not ours to touch. It stopped before taking the spare log over.
          cgroup = undefined;
          if (spareLog !== undefined) store.returnSpareLog(spareLog);
          throw planned.creationError(error.index ?? -1, error);
        }
        throw error;
      }
      this.#cgroup = cgroup;
      this.#log = new LiveLog(store.logPath(this.id), this.#native);
      this.#record.pid = this.#native.pid;
      this.#record.startedAt = startedAt.toISOString();
      // Not fsynced: if the host dies, so do its jobs; after a daemon crash the page cache still has
      // it, and a job recorded as starting is recovered exactly like a running one (lost).
      await this.#transition('running', false);
    } catch (error) {
      this.#native?.kill('SIGKILL');
      await cgroup?.destroy().catch((e: unknown) => this.#ctx.warn('cgroup not removed after a failed start', { job: this.id, error: String(e) }));
      await this.#native?.closed;
      await store.remove(this.id, 0).catch(() => undefined); // at most a header was written
      throw error;
    }
    const native = this.#native;
    void native.exited.then((exit) => this.#finish(native, exit));
  }

  /** Kill what is left, wait for the capture to end, take the final stats, remove the cgroup, record. */
  async #finish(native: NativeProcess, exit: ExitInfo): Promise<void> {
    this.#exitSeen = true;
    const cgroup = this.#cgroup!;
    let stats: CgroupStats | null = null;
    let removed = false;
    try {
      // Usually nothing outlives the main process: one batch (run by the capture thread at the exit,
      // or here) read the final stats and removed the cgroup.
      const settled = exit.exitOps !== undefined ? await cgroup.settled(exit.exitOps) : await cgroup.settle();
      stats = settled.stats;
      removed = settled.removed;
      if (!settled.empty) {
        await cgroup.kill();
        if (!(await cgroup.waitEmpty(KILL_WAIT_MS))) {
          this.#ctx.warn('processes of a finished job did not die', { job: this.id, cgroup: cgroup.path });
        }
        stats = await cgroup.stats();
      }
      native.closeCapture(); // writers outside the cgroup (fd passing) must not keep capture open
    } catch (error) {
      this.#ctx.warn('could not clean up after a job', { job: this.id, error: String(error) });
      native.closeCapture();
    }
    const close = await native.closed;
    if (!removed) {
      try {
        await cgroup.destroy();
      } catch (error) {
        // The job is over either way; the next start's orphan sweep retries the removal.
        this.#ctx.warn('cgroup not removed', { job: this.id, cgroup: cgroup.path, error: String(error) });
      }
    }
    const { state, outcome } = finalStateOf({
      exitCode: exit.code,
      signal: exit.signal,
      oomKilled: (stats?.oomKills ?? 0) > 0,
      stoppedBy: this.#stoppedBy,
    });
    this.#record.outcome = outcome;
    this.#record.finishedAt = exit.exitedAt.toISOString();
    this.#record.stats = stats;
    this.#record.log = {
      bytes: close.logBytes,
      droppedBytes: close.droppedBytes,
      truncated: close.truncated,
      writeError: close.writeError,
    };
    this.#native = null;
    this.#cgroup = null;
    try {
      await this.#transition(state, true);
    } catch (error) {
      // The state dir failed (disk full?): the job is finished all the same; say so, keep it in memory.
      this.#ctx.warn('final job record not written', { job: this.id, error: String(error) });
    }
    (this.#log as LiveLog).complete(close.logBytes);
    this.#log = new CompleteLog(this.#ctx.store.logPath(this.id), close.logBytes);
    this.#markFinished();
  }

  async #transition(state: JobState, durable: boolean): Promise<void> {
    const previous = this.#record.state;
    this.#record.state = state;
    try {
      await this.#ctx.store.write(this.#record, durable);
    } finally {
      this.#ctx.onStateChange(this, previous);
    }
  }

  get state(): JobState {
    return this.#record.state;
  }

  get owner(): string {
    return this.#record.spec.owner;
  }

  get createdAt(): Date {
    return new Date(this.#record.createdAt);
  }

  get logPath(): string {
    return this.#ctx.store.logPath(this.id);
  }

  /** Size of the log: final once finished. */
  get logBytes(): number {
    return isFinal(this.#record.state) ? this.#record.log.bytes : this.#log.committed();
  }

  get finishedAt(): Date | null {
    return this.#record.finishedAt === null ? null : new Date(this.#record.finishedAt);
  }

  status(): JobStatus {
    const r = this.#record;
    const log = isFinal(r.state) ? { ...r.log } : { ...r.log, bytes: this.#log.committed() };
    return {
      id: r.id,
      owner: r.spec.owner,
      command: r.spec.command,
      args: [...r.spec.args],
      cwd: r.spec.cwd,
      limits: structuredClone(r.spec.limits),
      user: r.spec.user === null ? null : { ...r.spec.user, groups: [...(r.spec.user.groups ?? [])] },
      state: r.state,
      pid: r.pid,
      outcome: r.outcome === null ? null : { ...r.outcome },
      createdAt: new Date(r.createdAt),
      startedAt: r.startedAt === null ? null : new Date(r.startedAt),
      finishedAt: r.finishedAt === null ? null : new Date(r.finishedAt),
      log,
      stats: r.stats === null ? null : structuredClone(r.stats),
    };
  }

  /** Resource use now (running), or the final snapshot (finished; null if it could not be read). */
  async stats(): Promise<CgroupStats | null> {
    const cgroup = this.#cgroup;
    if (cgroup !== null && !this.#exitSeen) {
      try {
        return await cgroup.stats();
      } catch {
        // Raced with the exit: the final snapshot is on its way.
      }
    }
    await this.#finished;
    return this.#record.stats === null ? null : structuredClone(this.#record.stats);
  }

  /** Resolves with the final status once the job has finished and everything is recorded. */
  async wait(): Promise<JobStatus> {
    await this.#launched;
    this.#throwIfNeverStarted();
    await this.#finished;
    return this.status();
  }

  #throwIfNeverStarted(): void {
    if (this.#launchError !== undefined) {
      throw new JobworkerError('failed-precondition', `job ${this.id} never started: ${String(this.#launchError)}`);
    }
  }

  logs(options: LogOptions = {}): AsyncGenerator<LogRecord> {
    return followLog(this.#log, options);
  }

  /**
   * Sends `signal` to every process of the job, waits up to `graceMs` (without holding anything),
   * then kills the whole cgroup; resolves once the job is really gone and recorded as stopped.
   * Stopping a finished job is a no-op that says so; concurrent stops share one.
   */
  stop(options: StopOptions = {}): Promise<StopResult> {
    // A stop in progress is joined; a stop of a job already over (even by an earlier stop) is a no-op.
    if (this.#stopping !== null && !isFinal(this.#record.state)) return this.#stopping;
    if (isFinal(this.#record.state) || this.#exitSeen) {
      return this.wait().then((status) => ({ alreadyFinished: true, status }));
    }
    this.#stoppedBy = options.by ?? 'unknown';
    this.#stopping = this.#stop(options.signal ?? 'SIGTERM', options.graceMs ?? this.#ctx.defaultGraceMs);
    return this.#stopping;
  }

  async #stop(signal: NodeJS.Signals, graceMs: number): Promise<StopResult> {
    await this.#launched;
    this.#throwIfNeverStarted();
    const cgroup = this.#cgroup;
    if (cgroup !== null && !this.#exitSeen) {
      try {
        await cgroup.signalAll(signal);
      } catch (error) {
        this.#ctx.warn('could not signal a job', { job: this.id, signal, error: String(error) });
      }
      const grace = new AbortController();
      const gone = await Promise.race([
        this.#finished.then(() => true),
        delay(graceMs, false, { signal: grace.signal }).catch(() => true),
      ]);
      grace.abort();
      if (!gone && !this.#exitSeen) {
        await cgroup.kill().catch((error: unknown) => {
          throw new JobworkerError('internal', `could not kill job ${this.id}: ${String(error)}`);
        });
      }
    }
    await this.#finished;
    return { alreadyFinished: false, status: this.status() };
  }
}
