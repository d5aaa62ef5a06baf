// The Worker: the library the daemon serves and Node programs embed. Owns the job registry, the
// state directory and the cgroup driver.
import { createHash, randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import * as path from 'node:path';

import {
  nodeCgroupFs,
  openCgroupDriver,
  prepareSliceLimits,
  useKillSignaller,
  type CgroupDriverOptions,
  type CgroupFs,
  type CgroupStats,
  type Limits,
  type OpenedCgroupDriver,
} from '../cgroup';
import { JobworkerError, NotFoundError, QuotaExceededError, ValidationError } from '../errors';
import { fsOps, PIDFD_SIGNALLER, SpawnError, tryLockPath } from '../native';
import { IdentityLedger, type QuotaUsage } from './identity-ledger';
import { defaultJobMemoryBytes, hostFacts, IdentityPolicy, type HostFacts, type IdentityLimits } from './identity-policy';
import { isJobId } from '../job-id';
import { DEFAULT_DYNAMIC_UID_RANGE, DynamicUids, type DynamicUidRange } from './dynamic-uids';
import { resolveIsolation, resolveIsolationDefaults, type IsolationDefaults, type JobIsolation } from './isolation';
import { Job, type JobContext, type JobSetup, type JobStatus, type ReleasedJob, type StopResult } from './job';
import { LeftoverCgroups } from './leftover-cgroups';
import { SpawnSlots } from './spawn-slots';
import { matchesLabels, parseLabelSelector } from './job-labels';
import { JobNames } from './job-names';
import { checkJobUser, resolveJobSpec, type JobNaming, type JobRunAs, type JobSpec, type JobUserChoice } from './job-spec';
import { isFinal, type JobState } from './job-state';
import { recover, type RecoveryReport } from './recovery';
import { resolveRunAs } from './run-as';
import { FinishedJobs } from './finished-jobs';
import { ScratchDirs } from './scratch';
import { StateLock } from './state-lock';
import type { CompactionPolicy, JournalStats } from './journal';
import { StateStore } from './state-store';
import { cachingUserDatabase, nssUserDatabase, type UserDatabase } from './user-database';

export interface WorkerDefaults {
  /**
   * Limits applied where a job's own limits leave a field unset. memoryBytes defaults to a quarter of
   * the host's memory (at most its identity's): every job has a memory limit.
   */
  limits?: Limits;
  /** Cap on each job's log file. Default 1 GiB. */
  logMaxBytes?: number;
  /** RLIMIT_NOFILE soft limit for jobs (the hard limit is inherited). Default 1024, like systemd. */
  nofileSoft?: number;
  /** Grace period of stop() before the cgroup is killed. Default 10 s. */
  stopGraceMs?: number;
  /** Who jobs run as unless their spec says: 'dynamic' (the default), or a user. */
  user?: JobUserChoice;
  /** Namespaces (each on by default), network ('host' by default), read-only root (off by default). */
  isolation?: IsolationDefaults;
}

export interface UserOptions {
  /** uids handed to jobs that run as dynamic users. Default DEFAULT_DYNAMIC_UID_RANGE (0x70000000, 65536 uids). */
  dynamicUids?: DynamicUidRange;
  /** Where user and group names are looked up; default: NSS through getent(1). */
  database?: UserDatabase;
}

export interface ScratchOptions {
  /**
   * Where jobs without a working directory get theirs (<root>/<job id>, 0700, the job's user's).
   * Default: a sibling of the state directory, "<stateDir>-scratch" (/var/lib/jobworker-scratch for
   * the daemon): on the same disk as the state (not in RAM), outside the state directory, which no
   * job may see, and kept across restarts so that leftovers of a crash are found and removed (a
   * clean close removes it once empty). A state directory under /tmp, /var/tmp or /dev/shm, which
   * jobs see as private tmpfs, gets /var/lib/jobworker-scratch/<its name>-<hash of its path>.
   */
  root?: string;
  /** Keep a finished job's directory (handed to root, 0700) instead of removing it. Default false. */
  keep?: boolean;
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
   * `rootName` (created beneath this process's own cgroup; default "jobworker-" and 12 hex digits of
   * the state directory's path hashed, so instances with different state directories never share
   * one). One instance per root: another one's open is refused. See docs/cgroups.md.
   * Jobs are always made on the real cgroupfs (the addon creates and removes their cgroups).
   */
  cgroup?: Omit<CgroupDriverOptions, 'fs' | 'host' | 'sliceLimits'>;
  /**
   * What each identity (a job's owner) may use, all its jobs together: its slice's kernel limits and
   * the quotas the Worker keeps. Unset fields: host defaults (see identity-policy.ts, docs/security.md).
   */
  identityLimits?: IdentityLimits;
  /** Per identity, over identityLimits. */
  identityOverrides?: Readonly<Record<string, IdentityLimits>>;
  defaults?: WorkerDefaults;
  retention?: RetentionPolicy;
  /** Jobs running at once; start() beyond it fails with resource-exhausted. Default 10,000. */
  maxRunningJobs?: number;
  /** Where warnings go (structured); default: process.emitWarning. */
  warn?: (message: string, details: Record<string, unknown>) => void;
  users?: UserOptions;
  scratch?: ScratchOptions;
  /** Paths no job may see or bind (the daemon's config and keys); the state directory and the scratch root are always hidden. */
  hiddenPaths?: readonly string[];
  /** When the journal is compacted while running (default: 4 times its live records, at least 1 MiB). */
  journalCompaction?: CompactionPolicy;
}

/** An identity's use of its limits (Worker.identityUsage). */
export interface IdentityUsage extends QuotaUsage {
  identity: string;
  /** Its slice's directory name (beneath the cgroup root's jobs/). */
  slice: string;
  /** Its slice's kernel limits (memory, pids, CPU, IO), the host defaults filled in. */
  limits: Limits;
  /** What its slice uses now, all its jobs together; null when it has no slice (no job ran lately). */
  stats: CgroupStats | null;
}

export interface StartOptions extends JobNaming {
  /** The job's id (a lower-case UUID not in use here); default: a new random one. */
  id?: string;
}

export interface ListFilter {
  owner?: string;
  states?: readonly JobState[];
  /** Only the jobs with this name (of any owner, unless `owner` says). */
  name?: string;
  /** Only the jobs whose labels match every term: "key=value", or "key" for a label with any value. */
  labels?: readonly string[];
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
 * cgroupfs as the cgroup drivers see it, every batch run by the addon on the libuv threadpool (the
 * same runner that creates a job's cgroup inside its spawn and settles it at the exit), the root
 * owned through the addon's flock.
 */
const CGROUP_FS: CgroupFs = { ...nodeCgroupFs, run: fsOps, lock: tryLockPath };

/** The cgroup root name of a state directory: instances with different state directories never share a root. */
export function defaultRootName(stateDir: string): string {
  return `jobworker-${createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 12)}`;
}

/** A hidden path must be a directory that exists: one made later would not be hidden from jobs already running. */
async function checkHiddenPaths(paths: readonly string[]): Promise<void> {
  for (const [i, hidden] of paths.entries()) {
    if (!path.isAbsolute(hidden)) throw new ValidationError(`hiddenPaths[${i}]`, 'must be an absolute path');
    const st = await stat(hidden).catch(() => null);
    if (st === null || !st.isDirectory()) throw new ValidationError(`hiddenPaths[${i}]`, `${hidden} is not an existing directory (only directories can be hidden from jobs)`);
  }
}

/** Covered in every job's mount namespace by a private tmpfs: a scratch directory there would be out of its reach. */
const PRIVATE_TMP_DIRS = ['/tmp', '/var/tmp', '/dev/shm'];

function underPrivateTmp(dir: string): string | undefined {
  return PRIVATE_TMP_DIRS.find((tmp) => dir === tmp || dir.startsWith(`${tmp}/`));
}

/** Where scratch roots of state directories under /tmp, /var/tmp or /dev/shm go instead (tests, trials). */
export const FALLBACK_SCRATCH_PARENT = '/var/lib/jobworker-scratch';

/**
 * "<stateDir>-scratch": beside the state directory, never inside it (jobs may not see that). A
 * state directory under /tmp, /var/tmp or /dev/shm gets FALLBACK_SCRATCH_PARENT/<its name>-<hash of
 * its path> instead: two state directories of one name (/tmp/a/state, /tmp/b/state) must not share
 * a root, or the second Worker's open() would sweep the first one's live jobs' directories.
 */
export function defaultScratchRoot(stateDir: string): string {
  const resolved = path.resolve(stateDir);
  const beside = path.join(path.dirname(resolved), `${path.basename(resolved)}-scratch`);
  if (underPrivateTmp(beside) === undefined) return beside;
  const pathHash = createHash('sha256').update(resolved).digest('hex').slice(0, 12);
  return path.join(FALLBACK_SCRATCH_PARENT, `${path.basename(resolved)}-${pathHash}`);
}

/** Directories not inside another of the list: once the outer one is hidden, the inner ones do not exist in the job's view. */
function outermost(dirs: readonly string[]): string[] {
  const unique = [...new Set(dirs)];
  return unique.filter((dir) => !unique.some((other) => other !== dir && (other === '/' || dir.startsWith(`${other}/`))));
}

function checkScratchRoot(root: string): void {
  const tmp = underPrivateTmp(path.resolve(root));
  if (tmp !== undefined) throw new ValidationError('scratch.root', `${root} is under ${tmp}, which every job sees as a private tmpfs of its own (its scratch directory would be out of reach); choose a directory elsewhere`);
}

function warnerOf(options: WorkerOptions): (message: string, details: Record<string, unknown>) => void {
  return options.warn ?? ((message, details) => process.emitWarning(`${message} ${JSON.stringify(details)}`, 'JobworkerWarning'));
}

export class Worker {
  readonly stateDir: string;
  /** What the last open() found and cleaned up. */
  readonly recovery: RecoveryReport;
  /** The cgroup driver jobs run under (mode, root). */
  readonly cgroupDriver: OpenedCgroupDriver;
  #store: StateStore;
  #lock: StateLock;
  /** Cgroups of finished jobs whose processes outlived the kill (stuck in the kernel), retried. */
  #leftovers: LeftoverCgroups;
  #options: WorkerOptions;
  #jobs = new Map<string, Job>();
  #startTimes = new Map<string, bigint>();
  #listeners = new Set<(event: JobEvent) => void>();
  /** Ids of the finished jobs still kept, the earliest finished first. */
  #finished = new FinishedJobs();
  /** Names of the jobs kept, per owner. */
  #names = new JobNames();
  #defaultUser: JobUserChoice;
  #isolationDefaults: Omit<JobIsolation, 'mounts'>;
  /**
   * Hidden from every job with a mount namespace, and what no bind may show: the state directory,
   * the configured paths (the daemon's config and keys) and the scratch root (other jobs' directories).
   */
  #hiddenPaths: string[];
  #users: UserDatabase;
  readonly dynamicUids: DynamicUids;
  readonly scratch: ScratchDirs;
  #running = 0;
  #policy: IdentityPolicy;
  #ledger: IdentityLedger;
  #defaultJobMemory: number;
  /** Per running job: what ends its count against its identity's quota. */
  #admissions = new Map<string, () => void>();
  #closing = false;
  #ctx: JobContext;

  private constructor(
    options: WorkerOptions,
    store: StateStore,
    lock: StateLock,
    driver: OpenedCgroupDriver,
    recovery: RecoveryReport,
    scratch: ScratchDirs,
    identities: { policy: IdentityPolicy; host: HostFacts },
  ) {
    this.stateDir = options.stateDir;
    this.#options = options;
    this.#store = store;
    this.#lock = lock;
    this.cgroupDriver = driver;
    this.recovery = recovery;
    const warn = warnerOf(options);
    this.#defaultUser = checkJobUser('defaults.user', options.defaults?.user ?? 'dynamic');
    this.#isolationDefaults = resolveIsolationDefaults('defaults.isolation', options.defaults?.isolation);
    this.#users = options.users?.database ?? cachingUserDatabase(nssUserDatabase);
    this.dynamicUids = new DynamicUids(options.users?.dynamicUids ?? DEFAULT_DYNAMIC_UID_RANGE, this.#users);
    this.scratch = scratch;
    this.#hiddenPaths = outermost([path.resolve(options.stateDir), ...(options.hiddenPaths ?? []).map((p) => path.resolve(p)), scratch.root]);
    this.#policy = identities.policy;
    this.#ledger = new IdentityLedger((identity) => identities.policy.quotas(identity));
    this.#defaultJobMemory = options.defaults?.limits?.memoryBytes ?? defaultJobMemoryBytes(identities.host);
    this.#leftovers = new LeftoverCgroups({ warn });
    this.#ctx = {
      store,
      spareLogs: store.spareLogs,
      driver,
      logMaxBytes: options.defaults?.logMaxBytes ?? DEFAULTS.logMaxBytes,
      nofileSoft: options.defaults?.nofileSoft ?? DEFAULTS.nofileSoft,
      defaultGraceMs: options.defaults?.stopGraceMs ?? DEFAULTS.stopGraceMs,
      onStateChange: (job, previous) => this.#stateChanged(job, previous),
      warn,
      releaseJob: (job) => this.#releaseJob(job),
      spawnSlots: new SpawnSlots(),
    };
    // Oldest first, as list() promises.
    const records = [...recovery.records].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    for (const record of records) {
      this.#jobs.set(record.id, Job.restore(this.#ctx, record));
      this.#ledger.chargeLog(record.spec.owner, record.log.bytes);
      const name = record.spec.name ?? null;
      const holder = name === null ? null : this.#names.claim(record.spec.owner, name, record.id);
      // Cannot happen with records this Worker wrote (starts claim the name): the older job keeps it.
      if (holder !== null) warn('two jobs of one owner have the same name: the older one keeps it', { name, owner: record.spec.owner, kept: holder, job: record.id });
    }
    const byFinish = records.filter((r) => r.finishedAt !== null).sort((a, b) => (a.finishedAt! < b.finishedAt! ? -1 : a.finishedAt! > b.finishedAt! ? 1 : 0));
    for (const r of byFinish) this.#finished.add(r.id, r.spec.owner);
  }

  /** Opens the state directory (one worker per directory), recovers from a crash, sweeps orphans. */
  static async open(options: WorkerOptions): Promise<Worker> {
    if (typeof options?.stateDir !== 'string' || options.stateDir === '') {
      throw new ValidationError('stateDir', 'is required');
    }
    // Checked before touching anything.
    if (options.defaults?.user !== undefined) checkJobUser('defaults.user', options.defaults.user);
    resolveIsolationDefaults('defaults.isolation', options.defaults?.isolation);
    new DynamicUids(options.users?.dynamicUids ?? DEFAULT_DYNAMIC_UID_RANGE, nssUserDatabase);
    if (options.scratch?.root !== undefined) checkScratchRoot(options.scratch.root);
    const scratch = new ScratchDirs(options.scratch?.root ?? defaultScratchRoot(options.stateDir), { keep: options.scratch?.keep ?? false });
    await checkHiddenPaths(options.hiddenPaths ?? []);
    const warn = warnerOf(options);
    const store = new StateStore(options.stateDir, {
      createFiles: (paths) => fsOps(paths.map((file) => ({ op: 'create', path: file }))),
      ...(options.journalCompaction === undefined ? {} : { compaction: options.journalCompaction }),
      warn,
    });
    await store.init();
    const host = hostFacts(options.stateDir);
    const policy = new IdentityPolicy({ defaults: options.identityLimits, overrides: options.identityOverrides }, host);
    const lock = await StateLock.acquire(store.stateDir);
    let driver: OpenedCgroupDriver | undefined;
    try {
      const cgroup = options.cgroup?.root === undefined && options.cgroup?.rootName === undefined ? { ...options.cgroup, rootName: defaultRootName(options.stateDir) } : options.cgroup;
      // A job's processes are signalled one by one (a stop's SIGTERM; a kill without cgroup.kill): through pidfds.
      useKillSignaller(PIDFD_SIGNALLER);
      driver = await openCgroupDriver({ ...cgroup, fs: CGROUP_FS, sliceLimits: (identity) => policy.sliceLimits(identity) });
      for (const { field, limits } of policy.configured()) await prepareSliceLimits(limits, field, driver.controllers, options.cgroup?.sysRoot, driver.mode);
      const recovery = await recover(store, driver, warn);
      await store.open(recovery.records); // lost jobs recorded, the journal compacted
      // Nothing runs now: every scratch directory left is a crashed daemon's or a failed removal's.
      await scratch.init();
      const swept = await scratch.sweep(new Set());
      if (swept.failed.length > 0) warn('scratch directories not removed', { directories: swept.failed });
      const worker = new Worker(options, store, lock, driver, recovery, scratch, { policy, host });
      await worker.#applyRetention();
      return worker;
    } catch (error) {
      // A failed open leaves no cgroup: the root it made (with whatever recovery left of it) goes.
      if (driver !== undefined) {
        const opened = driver;
        await opened.releaseRoot().catch((e: unknown) => {
          warnerOf(options)('cgroup root not removed after a failed open', { error: String(e) });
          opened.close();
        });
      }
      await store.close();
      await lock.release();
      throw error;
    }
  }

  /**
   * Starts a job. Resolves once its process runs; a bad spec or failed spawn throws and leaves nothing.
   * `options.id` gives the job an id chosen elsewhere (a pool job keeps the id it was queued with);
   * default: a new random one. `options.name`, unique among the owner's jobs until removed, is taken
   * before anything is awaited: of concurrent starts with one name, one wins, the others fail
   * `already-exists`.
   */
  async start(spec: JobSpec, options: StartOptions = {}): Promise<Job> {
    if (this.#closing) throw new JobworkerError('unavailable', 'the worker is shutting down');
    if (options.id !== undefined) {
      if (!isJobId(options.id)) throw new ValidationError('id', 'must be a lower-case UUID');
      if (this.#jobs.has(options.id)) throw new JobworkerError('already-exists', `job ${options.id} already exists`);
    }
    const resolved = resolveJobSpec(spec, options);
    // Object.assign, not `{ ...a, ...b }`: V8 gives every object spread that way a hidden class of its
    // own, and the record keeps these limits for the job's life.
    resolved.limits = Object.assign({}, this.#jobDefaults(resolved.owner), resolved.limits);
    const userChoice = resolved.user ?? this.#defaultUser;
    const isolation = resolveIsolation(resolved.isolation, { defaults: this.#isolationDefaults, hiddenPaths: this.#hiddenPaths, dynamicUser: userChoice === 'dynamic' });
    const max = this.#options.maxRunningJobs ?? DEFAULTS.maxRunningJobs;
    if (this.#running >= max) {
      throw new JobworkerError('resource-exhausted', `${this.#running} jobs are running, the limit is ${max} (maxRunningJobs)`);
    }
    const id = options.id ?? randomUUID();
    this.#claimName(resolved.owner, resolved.name, id);
    let admission: ReturnType<IdentityLedger['admit']>;
    try {
      admission = this.#ledger.admit(resolved.owner);
    } catch (error) {
      this.#releaseName(resolved.owner, resolved.name, id);
      throw error;
    }
    this.#running++;
    this.#admissions.set(id, admission.ended);
    this.#startTimes.set(id, process.hrtime.bigint());
    try {
      const setUp = () => this.#setUp(id, userChoice, resolved.cwd === null);
      return await Job.launch(this.#ctx, id, resolved, isolation, admission.budget, setUp, (job) => this.#jobs.set(id, job));
    } catch (error) {
      this.#jobs.delete(id);
      this.#releaseName(resolved.owner, resolved.name, id);
      this.#startTimes.delete(id);
      this.#admissions.delete(id);
      admission.ended();
      this.#running--;
      throw await this.#quotaBehind(resolved.owner, error);
    }
  }

  /** Gives the name to the job, or throws `already-exists` naming the job that has it and the way out. */
  #claimName(owner: string, name: string | null, id: string): void {
    if (name === null) return;
    const holder = this.#names.claim(owner, name, id);
    if (holder === null) return;
    const state = this.#jobs.get(holder)?.state ?? 'starting';
    const freeIt = isFinal(state) ? `job-cli rm ${name}` : `job-cli stop ${name}, then job-cli rm ${name}`;
    throw new JobworkerError('already-exists', `"${name}" is already the name of job ${holder} (${state}); choose another name, or remove that job first (${freeIt})`);
  }

  #releaseName(owner: string, name: string | null, id: string): void {
    if (name !== null) this.#names.release(owner, name, id);
  }

  /**
   * Who the job runs as (a dynamic uid is taken here; given back if the job never starts) and where
   * its scratch directory goes (made by the spawn, with the cgroups, in one trip off the JS thread).
   */
  async #setUp(id: string, choice: JobUserChoice, needsScratch: boolean): Promise<JobSetup> {
    let runAs: JobRunAs;
    if (choice === 'dynamic') {
      const uid = await this.dynamicUids.allocate();
      runAs = { uid, gid: uid, groups: [], name: null, kind: 'dynamic' };
    } else {
      runAs = await resolveRunAs(this.#users, 'user', choice);
    }
    return { runAs, scratchDir: needsScratch ? this.scratch.pathOf(id) : null, hiddenPaths: this.#hiddenPaths };
  }

  /** Removes a finished job's scratch directory, then frees its dynamic uid (if nothing of it is left). */
  async #releaseJob(job: ReleasedJob): Promise<void> {
    if (job.leftover != null) {
      // Its scratch directory and uid may not go to anyone while its processes run; its cgroup is
      // retried in the background, and all of it released once they are gone.
      const { leaveSlice } = job.leftover;
      this.#leftovers.adopt(job.id, job.leftover.cgroup, async () => {
        await this.#releaseJob({ ...job, emptied: true, leftover: null });
        await leaveSlice();
      });
      return;
    }
    let clean = job.emptied;
    if (job.scratchDir !== null) {
      const outcome = await this.scratch.release(job.scratchDir, job.runAs);
      if (!outcome.done) {
        clean = false;
        this.#ctx.warn('scratch directory not removed', { job: job.id, problem: outcome.problem });
      }
    }
    if (job.runAs.kind !== 'dynamic') return;
    if (job.unusableUid !== undefined) this.#ctx.warn('dynamic uid kept out of use until the worker reopens', { job: job.id, uid: job.runAs.uid, reason: job.unusableUid });
    else if (clean) this.dynamicUids.release(job.runAs.uid);
    else this.#ctx.warn('dynamic uid kept out of use until the worker reopens: something of its job is left', { job: job.id, uid: job.runAs.uid });
  }

  /**
   * A spawn refused with EAGAIN when the identity's slice is at its pids.max is the identity's pids
   * quota, not the host's: say so (which identity, its quota, how to free it).
   */
  async #quotaBehind(identity: string, error: unknown): Promise<unknown> {
    if (!(error instanceof SpawnError) || error.code !== 'EAGAIN') return error;
    const limit = this.#policy.sliceLimits(identity).pids;
    const pids = (await this.cgroupDriver.sliceStats(identity).catch(() => null))?.pidsCurrent;
    if (limit === undefined || pids === undefined || pids < limit - 1) return error;
    return new QuotaExceededError(identity, 'pids', limit, pids, 'its jobs hold every process it may have: stop some (job-cli stop ID) or wait for them to end');
  }

  /**
   * The configured default limits for a job of `identity`, no higher than the identity's slice
   * allows (a default the job could never reach would only be refused); memory always has one.
   */
  #jobDefaults(identity: string): Limits {
    const slice = this.#policy.sliceLimits(identity);
    const defaults: Limits = Object.assign({}, this.#options.defaults?.limits, { memoryBytes: this.#defaultJobMemory });
    const cap = (value: number | undefined, quota: number | undefined): number | undefined =>
      value === undefined || quota === undefined ? value : Math.min(value, quota);
    defaults.memoryBytes = cap(defaults.memoryBytes, slice.memoryBytes);
    if (defaults.memoryHighBytes !== undefined) defaults.memoryHighBytes = cap(defaults.memoryHighBytes, defaults.memoryBytes);
    if (defaults.pids !== undefined) defaults.pids = cap(defaults.pids, slice.pids);
    if (defaults.cpu !== undefined) defaults.cpu = cap(defaults.cpu, slice.cpu);
    return defaults;
  }

  /**
   * What an identity uses against its limits: the Worker's quotas (running jobs, log bytes) and its
   * slice (memory, pids, CPU, IO as the kernel counts them, all its jobs together).
   */
  async identityUsage(identity: string): Promise<IdentityUsage> {
    const [limits, stats] = await Promise.all([this.cgroupDriver.sliceLimits(identity), this.cgroupDriver.sliceStats(identity)]);
    return { identity, slice: this.cgroupDriver.sliceOf(identity), limits, stats, ...this.#ledger.usage(identity) };
  }

  /** Identities that have a job running or a log on disk now. */
  activeIdentities(): string[] {
    return this.#ledger.identities();
  }

  /** The Worker's quotas only (no cgroup read): for metrics over many identities. */
  quotaUsage(identity: string): QuotaUsage {
    return this.#ledger.usage(identity);
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

  /** `owner`'s job named `name`. */
  named(owner: string, name: string): Job | undefined {
    const id = this.#names.idOf(owner, name);
    return id === undefined ? undefined : this.#jobs.get(id);
  }

  /** Every job named `name`, at most one per owner, oldest first. */
  allNamed(name: string): Job[] {
    return this.#names
      .idsOf(name)
      .flatMap((id) => this.#jobs.get(id) ?? [])
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  /** Jobs, oldest first, optionally filtered. */
  list(filter: ListFilter = {}): Job[] {
    const selector = filter.labels === undefined ? [] : parseLabelSelector('labels', filter.labels);
    const jobs: Job[] = [];
    for (const job of this.#jobs.values()) {
      if (filter.owner !== undefined && job.owner !== filter.owner) continue;
      if (filter.states !== undefined && !filter.states.includes(job.state)) continue;
      if (filter.name !== undefined && job.name !== filter.name) continue;
      if (!matchesLabels(job.labels, selector)) continue;
      jobs.push(job);
    }
    return jobs;
  }

  /**
   * Removes a finished job's record, log and spec file. A state directory that refuses (read-only:
   * `unavailable`; full: `resource-exhausted`) leaves the job as it was.
   */
  async remove(id: string): Promise<void> {
    const job = this.job(id);
    if (!isFinal(job.state)) {
      throw new JobworkerError('failed-precondition', `job ${id} is ${job.state}; stop it before removing it`);
    }
    const removal = job.beginRemoval();
    try {
      // Recorded first: if the state directory refuses (full, read-only), nothing has changed.
      await this.#store.remove(id, { ...(removal.readersOpen ? {} : { logBytes: job.logBytes }), specFile: job.hasSpecFile });
    } catch (error) {
      removal.cancel();
      throw error;
    }
    this.#forget(job);
  }

  /** Calls `listener` after every job state change (persisted first). Returns the unsubscribe. */
  subscribe(listener: (event: JobEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The journal's size, its live records' size and the compactions done since open (metrics). */
  journalStats(): JournalStats {
    return this.#store.journalStats();
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
    this.#leftovers.close(); // what is left is swept at the next open, as after a crash
    let results: StopResult[] = [];
    if (options.stopJobs ?? true) {
      const active = [...this.#jobs.values()].filter((job) => !isFinal(job.state));
      results = await Promise.all(
        active.map((job) => job.stop({ by: 'worker shutdown', graceMs: options.graceMs }).catch(() => job.wait().then((status) => ({ alreadyFinished: true, status })))),
      );
    }
    // A uid check in flight runs getent in this process's cgroup (the root's daemon leaf on a pure
    // v2 host): it must be over before the root is removed, and no process of ours may outlive us.
    await this.dynamicUids.settled();
    if (options.stopJobs ?? true) {
      // A clean shutdown leaves no cgroup behind, not even the (empty) root or a slice.
      await this.cgroupDriver.releaseRoot().catch((error: unknown) => this.#ctx.warn('cgroup root not removed', { error: String(error) }));
      // A default scratch root is the Worker's own: once its jobs' directories are gone it goes too
      // (one under FALLBACK_SCRATCH_PARENT per state directory would pile up otherwise). A
      // configured root is the operator's and stays.
      if (this.#options.scratch?.root === undefined) await this.scratch.removeIfEmpty();
    }
    this.cgroupDriver.close(); // the root is another instance's to take from here on
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
      this.#admissions.get(job.id)?.();
      this.#admissions.delete(job.id);
      this.#finished.add(job.id, job.owner);
      void this.#applyRetention();
    }
    if (this.#listeners.size === 0) return; // a status snapshot is a deep copy: only for someone
    const event: JobEvent = { status: job.status(), previousState };
    if (startLatencyMs !== undefined) event.startLatencyMs = startLatencyMs;
    for (const listener of this.#listeners) listener(event);
  }

  /**
   * Drops a finished job from the registry: its name is free again, its log bytes no longer count.
   * Once only: two RemoveJob calls for one job, or one racing retention, both get here, and a log's
   * bytes released twice would let its identity write past its quota.
   */
  #forget(job: Job): void {
    if (this.#jobs.get(job.id) !== job) return;
    this.#jobs.delete(job.id);
    this.#finished.delete(job.id, job.owner);
    this.#releaseName(job.owner, job.name, job.id);
    this.#ledger.releaseLog(job.owner, job.logBytes);
  }

  /**
   * Removes the finished jobs past the age limit (the oldest first, whoever owns them), then, beyond
   * the count limit, the oldest of the owner with the most finished jobs, one at a time.
   */
  #applyRetention(): Promise<unknown> {
    const removals: Promise<unknown>[] = [];
    const maxCount = this.#options.retention?.maxFinishedJobs ?? DEFAULTS.maxFinishedJobs;
    const maxAge = this.#options.retention?.maxAgeMs;
    const now = Date.now();
    const removeOld = (job: Job): void => {
      const { readersOpen } = job.beginRemoval();
      this.#forget(job);
      removals.push(this.#store.remove(job.id, { ...(readersOpen ? {} : { logBytes: job.logBytes }), specFile: job.hasSpecFile }).catch((error: unknown) => this.#ctx.warn('could not remove an old job', { job: job.id, error: String(error) })));
    };
    if (maxAge !== undefined) {
      for (const id of this.#finished.inOrder()) {
        const oldest = this.#jobs.get(id)!;
        if (now - (oldest.finishedAt?.getTime() ?? now) <= maxAge) break;
        removeOld(oldest); // deleting the entry being visited is safe for a Set iterator
      }
    }
    while (this.#finished.size > maxCount) removeOld(this.#jobs.get(this.#finished.nextToEvict()!)!);
    return Promise.all(removals);
  }
}
