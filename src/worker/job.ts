// One job: launches it, follows its process to a final state, stops it, serves its logs and status.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import type { CgroupDriver, CgroupStats, JobCgroup, JobCgroupPlan, Limits } from '../cgroup';
import { JobworkerError, NotFoundError, ValidationError, errorCode, systemError } from '../errors';
import { everyoneCanReach } from '../request-paths';
import { CompleteLog, followLog, type FollowOptions } from '../logs/follower';
import { openLog, type LogRecord } from '../logs/reader';
import { SpawnError, spawnProcessAsync, type ExitInfo, type LogBudget, type NativeProcess } from '../native';
import { commandError, execOutOfMemory } from './command-error';
import { HOST_ISOLATION, type BindMount, type JobIsolation } from './isolation';
import { copyIsolation, copyLimits, copyOutcome, copyRunAs, copyStats } from './record-copies';
import { NO_LABELS } from './job-labels';
import { newJobRecord, type JobLogInfo, type JobRecord } from './job-record';
import { DEFAULT_JOB_PATH, type JobRunAs, type ResolvedJobSpec } from './job-spec';
import { scratchDirOp } from './scratch';
import type { SpawnSlots } from './spawn-slots';
import { chargedLogBytes } from './identity-ledger';
import { isolationSpawnOptions } from './spawn-isolation';
import { assertTransition, finalStateOf, isFinal, type JobOutcome, type JobState } from './job-state';
import { LiveLog } from './live-log';
import { findStart, type LogStart } from '../logs/tail';
import type { SpareLogs } from './spare-logs';
import type { StateStore } from './state-store';

/** A job's status as callers see it: a snapshot, never a live object. */
export interface JobStatus {
  id: string;
  owner: string;
  /** Its name, unique among its owner's jobs; null: none. */
  name: string | null;
  /** Its labels (none: empty). */
  labels: Record<string, string>;
  command: string;
  /**
   * The arguments. A job whose argv and environment are big (over 8 KiB as JSON) keeps only the
   * leading ones in memory: then `argsOmitted` says how many follow, and detailedStatus() has them all.
   */
  args: string[];
  argsOmitted: number;
  cwd: string;
  /** The limits in force: the job's own with the daemon's defaults filled in. */
  limits: Limits;
  /** Who the job runs as: a dynamic uid, its owner's mapped user, or one asked for; null while starting, before it is settled. */
  user: JobRunAs | null;
  /** Namespaces in force, network, read-only root, binds. */
  isolation: JobIsolation;
  /** Its scratch directory (its cwd unless one was given), null if it was given a working directory. */
  scratchDir: string | null;
  /** The longest it may run (ms from its start); null: no limit. */
  maxRuntimeMs: number | null;
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
  /** First signal, sent to every process of the job: a name such as "SIGTERM". Default SIGTERM. */
  signal?: string;
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

export interface LogOptions extends FollowOptions {
  /**
   * Start so that the last `tailLines` lines of the selected streams (as of now) come first, like
   * `tail -n`. The first record may then be delivered from part-way through: its `data` starts at
   * the line, its offsets are still the record's.
   */
  tailLines?: number;
  /**
   * With `tailLines` or `sinceNs`: awaited before the scan that finds the start, and what it
   * resolves with is called once the scan is over (the server bounds concurrent scans with it).
   */
  scanSlot?: () => Promise<() => void>;
  /** Read through this hold of the log (holdLog()): it goes on after a removal began. */
  hold?: LogHold;
}

/** A job's log kept readable for one reader that closes and reopens its reads (Job.holdLog()). */
export interface LogHold {
  /** The log, open; undefined if it could not be opened (then each read opens it, and says why not). */
  readonly file: FileHandle | undefined;
  release(): Promise<void>;
}

/** What a job needs from its worker. */
export interface JobContext {
  store: StateStore;
  spareLogs: SpareLogs;
  driver: CgroupDriver;
  logMaxBytes: number;
  nofileSoft: number;
  defaultGraceMs: number;
  /** Called after every state change, once the new state is persisted. */
  onStateChange(job: Job, previous: JobState): void;
  /** Problems that must not fail the job but should be seen (a cgroup that would not go away…). */
  warn(message: string, details: Record<string, unknown>): void;
  /**
   * Gives back what a job held once nothing of it runs: removes its scratch directory, then frees
   * its dynamic uid. `emptied` false (processes that would not die): the uid stays out of use.
   */
  releaseJob(job: ReleasedJob): Promise<void>;
  /** Spawns in flight per identity (spawn-slots.ts). */
  spawnSlots: SpawnSlots;
}

/** What the Worker settles for a job as it launches: its user (a dynamic uid is taken then) and scratch directory. */
export interface JobSetup {
  runAs: JobRunAs;
  /** Where its scratch directory goes (null: it has a cwd of its own); the spawn makes it. */
  scratchDir: string | null;
  /** Paths the job must not see (the state directory, the scratch root, the daemon's config and keys). */
  hiddenPaths: readonly string[];
}

/** Records written before jobs had users of their own ran as the daemon's user: root. */
const LEGACY_RUN_AS: JobRunAs = { uid: 0, gid: 0, groups: [], name: null, kind: 'requested' };

/**
 * Where a job is in its life, as the Job itself sees it (the public JobState says less):
 *   launching ──▶ running ──▶ settling ──▶ finished
 *        └──▶ never-started              (restored records start at finished)
 */
type Phase = 'launching' | 'never-started' | 'running' | 'settling' | 'finished';

const NEXT_PHASES: Record<Phase, readonly Phase[]> = {
  launching: ['running', 'never-started'],
  'never-started': [],
  running: ['settling'],
  settling: ['finished'],
  finished: [],
};

/** The log as followers read it: growing while the job runs, fixed once capture has ended. */
type JobLog = { kind: 'live'; log: LiveLog } | { kind: 'complete'; log: CompleteLog };

/** What exists only while the process runs. */
interface Running {
  native: NativeProcess;
  plan: JobCgroupPlan;
  cgroup: JobCgroup;
  /** The process is the job's init (PID 1 of its own PID namespace), which forwards signals. */
  throughInit: boolean;
}

function isSignalName(name: string): name is NodeJS.Signals {
  return Object.hasOwn(constants.signals, name);
}

/**
 * Whether `dir` is a directory on the daemon's host, told only of a path every user may look up
 * (the request names it: a hidden directory's existence is not the client's to learn).
 */
async function isHostDirectory(dir: string): Promise<boolean> {
  if (!(await everyoneCanReach(dir))) return false;
  return (await fsp.stat(dir).catch(() => null))?.isDirectory() === true;
}

async function unusableCwd(error: unknown, cwd: string, runAs: JobRunAs, ownMounts: boolean): Promise<JobworkerError | undefined> {
  if (!(error instanceof SpawnError) || error.stage !== 'chdir') return undefined;
  const who = runAs.name === null ? `uid ${runAs.uid}` : `${runAs.name} (uid ${runAs.uid})`;
  const user = `the job's user, ${who}${runAs.kind === 'dynamic' ? ', a dynamic uid,' : ''}`;
  let why: string;
  if (error.code === 'EACCES' || error.code === 'EPERM') why = `${user} cannot enter it (${error.code})`;
  else if ((error.code === 'ENOENT' || error.code === 'ENOTDIR') && ownMounts && (await isHostDirectory(cwd))) why = `not a directory in the job's view of the host (${error.code}): /tmp, /var/tmp and /dev/shm are private to each job, and the daemon's own directories are hidden`;
  else return new ValidationError('cwd', `${cwd} is not a directory the job can enter (${error.code}); give an existing directory, or no cwd for a scratch directory of its own`, { cause: error });
  return new JobworkerError('failed-precondition', `cwd ${cwd}: ${why}; give a directory that user may use, or no cwd for a scratch directory of its own`, { cause: error });
}

/** A bind the spawn could not make, as the request's field (`isolation.mounts[i].source` or `.target`). */
function unusableMount(error: unknown, mounts: readonly BindMount[]): ValidationError | undefined {
  if (!(error instanceof SpawnError) || error.stage !== 'mount' || error.kind !== 'invalid-argument' || error.path === undefined) return undefined;
  const at = mounts.findIndex((m) => m.source === error.path || m.target === error.path);
  if (at < 0) return undefined;
  const end = mounts[at]!.source === error.path ? 'source' : 'target';
  const why = error.code === 'EINVAL' ? 'a directory can be bound only onto a directory, and a file onto a file' : error.code === 'ENOENT' ? 'no such file or directory' : error.code;
  return new ValidationError(`isolation.mounts[${at}].${end}`, `${error.path}: ${why} (${error.code})`, { cause: error });
}

/**
 * A spawn whose child did not reach its exec by the addon's deadline (SpawnOptions.startTimeoutMs)
 * and was killed: nothing of the job ran. A process of the job's user can hold the child there with
 * SIGSTOP (a host login of a mapped user, or another job of a fixed --user); so can a file system
 * that does not answer.
 */
function stalledStart(error: unknown, runAs: JobRunAs): JobworkerError | undefined {
  if (!(error instanceof SpawnError) || error.code !== 'ETIMEDOUT' || (error.stage !== 'clone' && error.stage !== 'init')) return undefined;
  const who = runAs.name === null ? `uid ${runAs.uid}` : `${runAs.name} (uid ${runAs.uid})`;
  return new JobworkerError(
    'unavailable',
    `the job did not start: its first process did not reach its exec within ${START_TIMEOUT_MS / 1000} s and was killed. ` +
      `Another process of the job's user, ${who}, may have stopped it (SIGSTOP), or a file system it needs does not answer; nothing of the job ran`,
    { cause: error },
  );
}

/**
 * A job with its own PID namespace has two processes before its command can fork anything: its init
 * and the command. With limits.pids 1 init's fork of the command fails with EAGAIN.
 */
function pidsTooFewForInit(error: unknown, pids: number | undefined, ownPidNamespace: boolean): ValidationError | undefined {
  if (!(error instanceof SpawnError) || error.code !== 'EAGAIN' || error.stage !== 'clone' || !ownPidNamespace || pids === undefined || pids >= 2) return undefined;
  return new ValidationError('limits.pids', `${pids} is too few for a job with a PID namespace of its own: its init (PID 1) takes one and the command another; give at least 2`, { cause: error });
}

/** How long a spawn's child may take to reach its exec before it is killed (SpawnOptions.startTimeoutMs). */
const START_TIMEOUT_MS = 10_000;

/** What a finished (or never started) job gives back to the worker. */
export interface ReleasedJob {
  id: string;
  runAs: JobRunAs;
  scratchDir: string | null;
  /** Nothing of the job is left running. */
  emptied: boolean;
  /** Processes outlived the kill and the cgroup is still there: release once they are gone. */
  leftover?: { cgroup: JobCgroup; leaveSlice: () => Promise<void> } | null;
  /** Its dynamic uid may not go to another job (why): kept out of use until the worker reopens. */
  unusableUid?: string;
}

/**
 * The spawn step (native/spawn.cc, kStepUserKeyrings) that empties a dynamic uid's keyrings before
 * its job runs. It fails when an earlier job of that uid made its user keyring one it may not write
 * (`keyctl setperm @u`, which the kernel keeps, with the keys in it, as long as the host runs): no
 * job may have that uid again, or each would fail to start.
 */
const USER_KEYRINGS_STEP = "the user's keyrings (keyctl)";
/** Starts that found their dynamic uid's keyrings unusable, at most, before the start fails. */
const UNUSABLE_UID_ATTEMPTS = 3;

function keyringsUnusable(error: unknown, runAs: JobRunAs): boolean {
  return runAs.kind === 'dynamic' && error instanceof SpawnError && error.stage === 'credentials' && error.path === USER_KEYRINGS_STEP;
}

// A stopped job's processes get this long after cgroup.kill to disappear before we stop waiting.
const KILL_WAIT_MS = 10_000;

export class Job {
  readonly id: string;
  #ctx: JobContext;
  #record: JobRecord;
  #phase: Phase;
  #running: Running | null = null;
  #log: JobLog;
  #launchError: unknown = undefined;
  /** A failed start's cgroup that could not be removed (#removeFailedStart), for its release. */
  #startLeftover: ReleasedJob['leftover'] = null;
  /** Its identity's log budget, which its capture draws from (a launch only). */
  #logBudget: LogBudget | undefined;
  /** The final resource snapshot, once taken (undefined before). */
  #settledStats: CgroupStats | null | undefined;
  /** Followers and tail scans of the log now (see beginRemoval). */
  #logReaders = 0;
  #removing = false;
  /** Who asked for a stop (once one was asked for), and the stop everyone then shares. */
  #stop: { by: string; done: Promise<StopResult> } | null = null;
  /** Fires at its maximum runtime, while it runs. */
  #deadline: NodeJS.Timeout | null = null;
  /** The deadline's stop is the one in progress (not a client's): the job timed out. */
  #timedOut = false;
  #launched: Promise<void> = Promise.resolve();
  #finished: Promise<void>;
  #markFinished!: () => void;

  private constructor(ctx: JobContext, record: JobRecord, phase: Phase) {
    this.id = record.id;
    this.#ctx = ctx;
    this.#record = record;
    this.#phase = phase;
    this.#log = { kind: 'complete', log: new CompleteLog(ctx.store.logPath(record.id), record.log.bytes) };
    this.#finished = new Promise((resolve) => (this.#markFinished = resolve));
    if (phase === 'finished') this.#markFinished();
  }

  /** A job known from its record (finished, or recovered after a restart). */
  static restore(ctx: JobContext, record: JobRecord): Job {
    if (!isFinal(record.state)) throw new JobworkerError('internal', `job ${record.id}: only finished jobs are restored (state ${record.state})`);
    return new Job(ctx, record, 'finished');
  }

  /**
   * Plans the cgroup, spawns the process into it (the addon creates the cgroup in the same trip) and
   * records the job as running. On any failure nothing is left behind and the error is thrown.
   * `registered` is called as soon as the job exists (still starting), so a concurrent stop can find it.
   */
  static async launch(
    ctx: JobContext,
    id: string,
    spec: ResolvedJobSpec,
    isolation: JobIsolation,
    logBudget: LogBudget | undefined,
    setUp: () => Promise<JobSetup>,
    registered: (job: Job) => void,
  ): Promise<Job> {
    // The record keeps a bounded summary of the spec; the whole spec lives only until the spawn
    // (and in its spec file when it is big).
    const job = new Job(ctx, newJobRecord(id, spec, new Date(), isolation), 'launching');
    job.#logBudget = logBudget;
    let launched!: () => void;
    job.#launched = new Promise((resolve) => (launched = resolve));
    registered(job);
    try {
      await job.#start(spec, setUp);
    } catch (error) {
      job.#launchError = error;
      job.#enter('never-started');
      job.#markFinished();
      throw error;
    } finally {
      launched();
    }
    return job;
  }

  async #start(spec: ResolvedJobSpec, setUp: () => Promise<JobSetup>): Promise<void> {
    // A spawn sets the cwd to the scratch directory it makes: a second one makes its own again.
    const cwd = { spec: spec.cwd, record: this.#record.spec.cwd };
    for (let attempt = 1; ; attempt++) {
      spec.cwd = cwd.spec;
      this.#record.spec.cwd = cwd.record;
      const setup = await setUp();
      try {
        await this.#spawn(spec, setup);
        return;
      } catch (error) {
        // Its scratch directory and dynamic uid go back: now, or once what outlived the kill is gone.
        const leftover = this.#startLeftover;
        this.#startLeftover = null;
        const unusable = keyringsUnusable(error, setup.runAs);
        await this.#ctx.releaseJob({
          id: this.id, runAs: setup.runAs, scratchDir: setup.scratchDir, emptied: leftover === null, leftover,
          ...(unusable ? { unusableUid: `an earlier job of the uid left keyrings it cannot empty (${(error as Error).message})` } : {}),
        });
        // Another job's doing, not this one's: it starts with another uid.
        if (unusable && leftover === null && attempt < UNUSABLE_UID_ATTEMPTS) continue;
        throw error;
      }
    }
  }

  async #spawn(spec: ResolvedJobSpec, setup: JobSetup): Promise<void> {
    const { store, spareLogs, driver } = this.#ctx;
    const { runAs, scratchDir, hiddenPaths } = setup;
    if (scratchDir !== null) {
      spec.cwd = scratchDir;
      this.#record.spec.cwd = scratchDir;
    }
    this.#record.runAs = runAs;
    this.#record.scratchDir = scratchDir;
    const cwd = spec.cwd ?? '/';
    // An IO limit without a device is on the disk behind the working directory. A scratch
    // directory is made by the spawn, later: its parent, the scratch root, is on the same disk.
    const deviceDir = scratchDir === null ? cwd : path.dirname(scratchDir);
    const plan = await driver.plan({ id: this.id, identity: spec.owner }, spec.limits, deviceDir);
    // The record (and the spec file) show what is enforced, defaults included.
    spec.limits = plan.limits;
    this.#record.spec.limits = plan.limits;
    // A big spec goes to its own file while the process is spawned (both off the JS thread); the
    // job is recorded as running only once both are done.
    const specSaved = this.#record.specFile ? store.writeSpec(this.id, spec) : null;
    specSaved?.catch(() => undefined); // awaited below; a spawn failure must not leave it unhandled
    // A threadpool thread is the spawn's until the child has exec'd: an identity gets a few at once.
    const releaseSlot = await this.#ctx.spawnSlots.acquire(spec.owner);
    // Taken before the spawn: the process may exit (and be reaped, with its own timestamp) before
    // the spawn even returns.
    const startedAt = new Date();
    let spareLog: string | undefined;
    let native: NativeProcess;
    try {
      spareLog = spareLogs.take();
      // Off the JS thread: the addon creates the cgroup (plan.createOps, undone if one fails), takes
      // the spare log over, spawns; at the exit its capture side runs plan.settleOps.
      native = await spawnProcessAsync({
        command: spec.command,
        args: spec.args,
        env: spec.env,
        cwd,
        setupOps: scratchDir === null ? plan.createOps : [...plan.createOps, scratchDirOp(scratchDir, runAs)],
        startedOps: plan.startedOps,
        startTimeoutMs: START_TIMEOUT_MS,
        exitOps: plan.settleOps,
        ...plan.placement,
        logPath: store.logPath(this.id),
        logRecycleFrom: spareLog,
        logMaxBytes: this.#ctx.logMaxBytes,
        ...(this.#logBudget === undefined ? {} : { logBudget: this.#logBudget }),
        nofileSoft: this.#ctx.nofileSoft,
        uid: runAs.uid,
        gid: runAs.gid,
        groups: runAs.groups,
        ...isolationSpawnOptions(this.#record.isolation!, { hiddenPaths, scratchDir }, { dynamicUid: runAs.kind === 'dynamic' }),
      }).finally(releaseSlot);
    } catch (error) {
      releaseSlot(); // (once: a second call does nothing)
      await specSaved?.catch(() => undefined);
      if (error instanceof SpawnError && error.stage === 'setup') {
        // The addon undid what it created and stopped before taking the spare log over; a
        // directory that was there already is not ours to touch.
        plan.createOpsRan('undone');
        await this.#leaveSlice(plan);
        if (spareLog !== undefined) spareLogs.giveBack(spareLog);
        await this.#forget();
        // The scratch op comes last: it did not run, failed, or was undone. Either way the path is
        // not the job's to remove: whatever has it stays.
        setup.scratchDir = null;
        const failed = error.index ?? 0;
        if (failed < plan.createOps.length) throw plan.creationError({ completed: failed, reads: [], error });
        throw systemError('cannot create the job\'s scratch directory', error.path ?? scratchDir ?? undefined, error);
      }
      // The cgroup was made (the process may have run a few instructions in it): remove it.
      plan.createOpsRan(error instanceof SpawnError ? 'created' : 'unknown');
      await this.#removeFailedStart(plan);
      await this.#forget(); // at most a header was written
      throw (
        (await unusableCwd(error, cwd, runAs, this.#record.isolation!.namespaces.mount)) ??
        stalledStart(error, runAs) ??
        pidsTooFewForInit(error, spec.limits.pids, this.#record.isolation!.namespaces.pid) ??
        unusableMount(error, this.#record.isolation!.mounts) ??
        (error instanceof SpawnError ? execOutOfMemory(spec.command, spec.limits.memoryBytes ?? null, error) : null) ??
        (error instanceof SpawnError && error.stage === 'exec' ? await commandError(spec.command, spec.env.PATH ?? DEFAULT_JOB_PATH, error) : error)
      );
    }
    plan.createOpsRan('created');
    this.#record.pid = native.pid;
    this.#record.startedAt = startedAt.toISOString();
    try {
      await specSaved;
      // Not fsynced: if the host dies, so do its jobs; after a daemon crash the page cache still has
      // it, and a job recorded as starting is recovered exactly like a running one (lost).
      await this.#transition('running', false);
    } catch (error) {
      // The state directory refused the spec or the record (full? read-only?): a job must not run
      // unrecorded.
      native.kill('SIGKILL');
      await native.exited;
      native.closeCapture();
      const close = await native.closed;
      // The capture charged what the job wrote to its identity's budget; the log goes below.
      this.#logBudget?.release(chargedLogBytes(close.logBytes));
      await this.#removeFailedStart(plan);
      await this.#forget();
      throw error;
    }
    this.#running = { native, plan, cgroup: plan.cgroup, throughInit: this.#record.isolation!.namespaces.pid };
    this.#log = { kind: 'live', log: new LiveLog(store.logPath(this.id), native) };
    this.#enter('running');
    const limitMs = this.#record.spec.maxRuntimeMs ?? null;
    if (limitMs !== null) {
      // unref: a daemon shutting down does not wait for it (its close stops the jobs anyway).
      this.#deadline = setTimeout(() => this.#timeOut(), limitMs).unref();
    }
    void native.exited.then((exit) => this.#finish(exit));
  }

  /** Kill what is left, wait for the capture to end, take the final stats, remove the cgroup, record. */
  async #finish(exit: ExitInfo): Promise<void> {
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    this.#deadline = null;
    const { native, plan, cgroup } = this.#running!;
    this.#enter('settling');
    let stats: CgroupStats | null = null;
    let removed = false;
    let emptied = false;
    try {
      // Usually nothing outlives the main process: the addon's capture side read the final stats and
      // removed the cgroup right after the exit (plan.settleOps).
      const settled = plan.settled(exit.exitOps ?? { completed: 0, reads: [], error: new Error('no exit ops report') });
      stats = settled.stats;
      removed = settled.removed;
      emptied = settled.empty;
      if (!settled.empty) {
        await cgroup.kill();
        emptied = await cgroup.waitEmpty(KILL_WAIT_MS);
        if (!emptied) this.#ctx.warn('processes of a finished job did not die', { job: this.id, cgroup: cgroup.path });
        stats = await cgroup.stats();
      }
    } catch (error) {
      this.#ctx.warn('could not clean up after a job', { job: this.id, error: String(error) });
    }
    native.closeCapture(); // writers outside the cgroup (fd passing) must not keep capture open
    const close = await native.closed;
    if (!removed) {
      try {
        await cgroup.destroy();
        removed = true;
      } catch (error) {
        // The job is over either way. Processes left (stuck in the kernel): the worker retries in the
        // background; anything else: the next start's orphan sweep retries the removal.
        this.#ctx.warn('cgroup not removed', { job: this.id, cgroup: cgroup.path, error: String(error) });
      }
    }
    const { state, outcome } = finalStateOf({
      exitCode: exit.code,
      signal: exit.signal,
      oomKilled: (stats?.oomKills ?? 0) > 0,
      stoppedBy: this.#timedOut ? null : (this.#stop?.by ?? null),
      timedOutAfterMs: this.#timedOut ? (this.#record.spec.maxRuntimeMs ?? null) : null,
    });
    const final: Pick<JobRecord, 'outcome' | 'finishedAt' | 'stats' | 'log'> = {
      outcome,
      finishedAt: exit.exitedAt.toISOString(),
      stats,
      log: { bytes: close.logBytes, droppedBytes: close.droppedBytes, truncated: close.truncated, writeError: close.writeError },
    };
    this.#settledStats = stats;
    const scratchDir = this.#record.scratchDir ?? null;
    let recorded = false;
    if (scratchDir !== null) {
      // On disk before the scratch directory goes: removing one of many files takes seconds, and a
      // daemon killed meanwhile must still know how the job ended (its next open sweeps the rest).
      // The job's own record changes (and everyone is told) once that is done, as before. What is
      // written is a copy: this.#record must not read as final until then.
      recorded = await this.#ctx.store.write({ ...this.#record, ...final, state }, true).then(
        () => true,
        (error: unknown) => (this.#ctx.warn('final job record not written', { job: this.id, error: String(error) }), false),
      );
    }
    // Processes still there: the cgroup, the uid and the place in the slice are given back once they
    // are gone (LeftoverCgroups), not now.
    const leftover = !emptied && !removed ? { cgroup, leaveSlice: () => this.#leaveSlice(plan) } : null;
    await this.#ctx.releaseJob({ id: this.id, runAs: this.#record.runAs ?? LEGACY_RUN_AS, scratchDir, emptied, leftover });
    if (leftover === null) await this.#leaveSlice(plan);
    Object.assign(this.#record, final);
    this.#running = null;
    try {
      await this.#transition(state, recorded ? 'written' : true);
    } catch (error) {
      // The state dir failed (disk full?): the job is finished all the same; say so, keep it in memory.
      this.#ctx.warn('final job record not written', { job: this.id, error: String(error) });
    }
    if (this.#log.kind === 'live') this.#log.log.complete(close.logBytes);
    this.#log = { kind: 'complete', log: new CompleteLog(this.#ctx.store.logPath(this.id), close.logBytes) };
    this.#enter('finished');
    this.#markFinished();
  }

  /**
   * After a start that failed once the cgroup was made: removes it and leaves the slice. If that
   * fails (a process the job forked outlived the kill), the job's release waits for it (leftover).
   */
  async #removeFailedStart(plan: JobCgroupPlan): Promise<void> {
    try {
      await plan.cgroup.destroy();
    } catch (error) {
      this.#ctx.warn('cgroup not removed after a failed start', { job: this.id, error: String(error) });
      this.#startLeftover = { cgroup: plan.cgroup, leaveSlice: () => this.#leaveSlice(plan) };
      return;
    }
    await this.#leaveSlice(plan);
  }

  /** The job's cgroup is gone (or never was): its identity's slice may go once idle. */
  async #leaveSlice(plan: JobCgroupPlan): Promise<void> {
    await plan.release().catch((error: unknown) => this.#ctx.warn('identity slice not removed', { job: this.id, error: String(error) }));
  }

  /** After a failed start: whatever of the job reached the state directory goes. */
  async #forget(): Promise<void> {
    await this.#ctx.store.remove(this.id, { logBytes: 0, specFile: this.#record.specFile }).catch((e: unknown) => this.#ctx.warn('could not remove what a failed start left', { job: this.id, error: String(e) }));
  }

  #enter(phase: Phase): void {
    if (!NEXT_PHASES[this.#phase].includes(phase)) {
      throw new JobworkerError('internal', `job ${this.id}: phase ${this.#phase} cannot go to ${phase} (a bug)`);
    }
    this.#phase = phase;
  }

  /**
   * Records the new state (the order is the lifecycle's: an illegal step is a bug and throws).
   * `written`: the journal has this very record already (the final one, written ahead of a slow
   * cleanup): only the job's own state changes, and everyone is told.
   */
  async #transition(state: JobState, durable: boolean | 'written'): Promise<void> {
    const previous = this.#record.state;
    assertTransition(this.id, previous, state);
    this.#record.state = state;
    try {
      if (durable !== 'written') await this.#ctx.store.write(this.#record, durable);
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

  get name(): string | null {
    return this.#record.spec.name ?? null;
  }

  /** Its labels, read-only (status() has a copy). */
  get labels(): Readonly<Record<string, string>> {
    return this.#record.spec.labels ?? NO_LABELS;
  }

  get createdAt(): Date {
    return new Date(this.#record.createdAt);
  }

  get logPath(): string {
    return this.#ctx.store.logPath(this.id);
  }

  /** Size of the log: final once finished. */
  get logBytes(): number {
    return this.#phase === 'finished' ? this.#record.log.bytes : this.#log.log.committed();
  }

  /** The whole spec is in its spec file (to be removed with the job). */
  get hasSpecFile(): boolean {
    return this.#record.specFile;
  }

  get finishedAt(): Date | null {
    return this.#record.finishedAt === null ? null : new Date(this.#record.finishedAt);
  }

  status(): JobStatus {
    const r = this.#record;
    // Copies made field by field (not structuredClone, not `{ ...a, b }`): a listing calls this for
    // every job, and V8 gives every object spread-and-extended a hidden class of its own.
    return {
      id: r.id,
      owner: r.spec.owner,
      name: r.spec.name ?? null,
      labels: Object.assign({}, r.spec.labels),
      command: r.spec.command,
      args: [...r.spec.args],
      argsOmitted: r.spec.argsOmitted,
      cwd: r.spec.cwd ?? '/',
      limits: copyLimits(r.spec.limits),
      user: r.runAs !== undefined ? copyRunAs(r.runAs) : this.#phase === 'launching' || this.#phase === 'never-started' ? null : copyRunAs(LEGACY_RUN_AS),
      isolation: copyIsolation(r.isolation ?? HOST_ISOLATION),
      scratchDir: r.scratchDir ?? null,
      maxRuntimeMs: r.spec.maxRuntimeMs ?? null,
      state: r.state,
      pid: r.pid,
      outcome: r.outcome === null ? null : copyOutcome(r.outcome),
      createdAt: new Date(r.createdAt),
      startedAt: r.startedAt === null ? null : new Date(r.startedAt),
      finishedAt: r.finishedAt === null ? null : new Date(r.finishedAt),
      log: {
        bytes: this.#phase === 'finished' ? r.log.bytes : this.#log.log.committed(),
        droppedBytes: r.log.droppedBytes,
        truncated: r.log.truncated,
        writeError: r.log.writeError,
      },
      stats: r.stats === null ? null : copyStats(r.stats),
    };
  }

  /**
   * status() with every argument: those a big spec's record leaves out are read from its spec file
   * (for GetJob of one job; listings use status()). If the file cannot be read, status() as it is.
   */
  async detailedStatus(): Promise<JobStatus> {
    const status = this.status();
    if (status.argsOmitted === 0) return status;
    const spec = await this.#ctx.store.readSpec(this.id);
    if (spec === undefined) {
      this.#ctx.warn('spec file of a job missing or damaged: its arguments are shown in part', { job: this.id });
      return status;
    }
    status.args = [...spec.args];
    status.argsOmitted = 0;
    return status;
  }

  /** Resource use now (running), or the final snapshot (finished; null if it could not be read). */
  async stats(): Promise<CgroupStats | null> {
    const running = this.#running;
    if (running !== null && this.#phase === 'running') {
      try {
        return await running.cgroup.stats();
      } catch {
        // Raced with the exit: the final snapshot is on its way.
      }
    }
    // Settling: the final snapshot is taken before the scratch directory goes (which may take seconds).
    if (this.#settledStats !== undefined) return this.#settledStats === null ? null : copyStats(this.#settledStats);
    await this.#finished;
    return this.#record.stats === null ? null : copyStats(this.#record.stats);
  }

  /** Resolves with the final status once the job has finished and everything is recorded. */
  async wait(): Promise<JobStatus> {
    await this.#launched;
    this.#throwIfNeverStarted();
    await this.#finished;
    return this.status();
  }

  #throwIfNeverStarted(): void {
    if (this.#phase === 'never-started') {
      throw new JobworkerError('failed-precondition', `job ${this.id} never started: ${String(this.#launchError)}`);
    }
  }

  /**
   * The job's output records, from `from` (or the last `tailLines` lines), optionally following it
   * to its end. Finding where a tail or `sinceNs` starts walks record headers only, off the JS thread.
   */
  async *logs(options: LogOptions = {}): AsyncGenerator<LogRecord> {
    await this.#launched;
    this.#throwIfNeverStarted();
    const held = options.hold?.file;
    // A held log was open before any removal began: its reader reads on, from the open file.
    if (this.#removing && held === undefined) throw new NotFoundError(`job ${this.id} not found (removed)`);
    // Counted for beginRemoval(); in this very generator (another one in between would cost every
    // record a promise more).
    this.#logReaders++;
    try {
      const { tailLines, scanSlot, hold, ...rest } = options;
      const follow: FollowOptions = hold?.file === undefined ? rest : { ...rest, file: hold.file };
      if (tailLines !== undefined && (!Number.isSafeInteger(tailLines) || tailLines < 0)) {
        throw new ValidationError('tailLines', 'must be a non-negative integer');
      }
      const source = this.#log.log;
      if (tailLines === undefined && follow.sinceNs === undefined) {
        yield* followLog(source, follow);
        return;
      }
      const release = await scanSlot?.();
      let start: LogStart;
      try {
        start = await findStart(source.path, {
          from: follow.from,
          until: source.committed(),
          tailLines,
          sinceNs: follow.sinceNs,
          streams: follow.streams,
        });
      } finally {
        release?.();
      }
      let skip = start.skip;
      for await (const record of followLog(source, { ...follow, from: start.from })) {
        if (skip > 0) {
          yield { ...record, data: record.data.subarray(skip) };
          skip = 0;
        } else {
          yield record;
        }
      }
    } catch (error) {
      // Removed while this reader was on its way to the file: it is gone, as the job is.
      if (this.#removing && errorCode(error) === 'ENOENT') throw new NotFoundError(`job ${this.id} not found (removed)`);
      throw error;
    } finally {
      this.#logReaders--;
    }
  }

  /**
   * Keeps the log readable for one stream that reads it in several goes, closing its reader in
   * between (a follower that sends other followers' messages, src/server/log-stream.ts): counted as
   * a reader until released, so a removal deletes the file instead of recycling it, and holding it
   * open, so that the stream's later reads (`logs({ hold })`) go on to the last byte after a removal
   * began, as one reader would.
   */
  async holdLog(): Promise<LogHold> {
    await this.#launched;
    this.#throwIfNeverStarted();
    if (this.#removing) throw new NotFoundError(`job ${this.id} not found (removed)`);
    this.#logReaders++;
    let file: FileHandle | undefined;
    try {
      file = await openLog(this.#log.log.path);
    } catch {
      file = undefined; // the reads open it themselves, and report what is wrong
    }
    let released = false;
    return {
      file,
      release: async () => {
        if (released) return;
        released = true;
        this.#logReaders--;
        await file?.close();
      },
    };
  }

  /**
   * The job is being removed: no new reader may open its log. Returns whether a reader has it open
   * now; then the file must be deleted, never emptied and recycled as a spare for another job's log
   * (the reader would go on to read that job's output). `cancel` undoes it (the removal failed).
   */
  beginRemoval(): { readersOpen: boolean; cancel(): void } {
    this.#removing = true;
    return { readersOpen: this.#logReaders > 0, cancel: () => (this.#removing = false) };
  }

  /**
   * Sends `signal` to every process of the job, waits up to `graceMs` (without holding anything),
   * then kills the whole cgroup; resolves once the job is really gone and recorded as stopped.
   * `graceMs` 0 kills at once (SIGKILL) without sending `signal`.
   * Stopping a finished job is a no-op that says so; concurrent stops share one. An unknown signal
   * name is a ValidationError on the `signal` field, and nothing is signalled.
   */
  stop(options: StopOptions = {}): Promise<StopResult> {
    const signal = options.signal ?? 'SIGTERM';
    if (!isSignalName(signal)) {
      return Promise.reject(new ValidationError('signal', `unknown signal ${JSON.stringify(signal.slice(0, 32))} (use a name like SIGTERM)`));
    }
    // A stop in progress is joined; a stop of a job already over (even by an earlier stop) is a no-op.
    if (this.#stop !== null && this.#phase !== 'finished') return this.#stop.done;
    if (this.#phase === 'settling' || this.#phase === 'finished' || this.#phase === 'never-started') {
      return this.wait().then((status) => ({ alreadyFinished: true, status }));
    }
    const by = options.by ?? 'unknown';
    const done = this.#stopNow(signal, options.graceMs ?? this.#ctx.defaultGraceMs);
    this.#stop = { by, done };
    return done;
  }

  /** Its maximum runtime is over: stopped like a client's stop with the defaults, unless one is under way. */
  #timeOut(): void {
    this.#deadline = null;
    if (this.#phase !== 'running' || this.#stop !== null) return;
    this.#timedOut = true;
    this.stop({ by: 'its maximum runtime' }).catch((error: unknown) => this.#ctx.warn('could not stop a job at its maximum runtime', { job: this.id, error: String(error) }));
  }

  async #stopNow(signal: NodeJS.Signals, graceMs: number): Promise<StopResult> {
    await this.#launched;
    this.#throwIfNeverStarted();
    const running = this.#running;
    if (running !== null && this.#phase === 'running') {
      // No grace: SIGKILL at once, as `docker stop -t 0` and systemd's TimeoutStopSec=0 end up
      // doing. Sending the signal first would race the kill: through the job's init (which forwards
      // it a moment later) the job died of either, so the outcome was a coin toss.
      const gone = graceMs === 0 ? false : await this.#signalAndWait(running, signal, graceMs);
      if (!gone && this.#phase === 'running') {
        await running.cgroup.kill().catch((error: unknown) => {
          throw new JobworkerError('internal', `could not kill job ${this.id}: ${String(error)}`);
        });
      }
    }
    await this.#finished;
    return { alreadyFinished: false, status: this.status() };
  }

  /** Sends `signal` to every process of the job; true if the job ended within `graceMs`. */
  async #signalAndWait(running: Running, signal: NodeJS.Signals, graceMs: number): Promise<boolean> {
    try {
      // In a PID namespace of its own, the job's init forwards the signal to every process of
      // the job: signalling each process as well would deliver it twice.
      if (running.throughInit) running.native.kill(signal);
      else await running.cgroup.signalAll(signal);
    } catch (error) {
      this.#ctx.warn('could not signal a job', { job: this.id, signal, error: String(error) });
    }
    const grace = new AbortController();
    const gone = await Promise.race([this.#finished.then(() => true), delay(graceMs, false, { signal: grace.signal }).catch(() => true)]);
    grace.abort();
    return gone;
  }
}
