// A daemon's part in a fleet: the NATS link, the pool jobs' records (mirrored), the heartbeat, the
// runner for the pools it serves and the reaper of lost runs. The server asks it to submit, read,
// stop-while-queued and remove pool jobs; the daemon starts and closes it.
import { randomUUID } from 'node:crypto';

import { JobworkerError, ValidationError } from '../errors';
import type { Logger } from '../logger';
import { checkJobUser, resolveJobSpec, validateLimits, type JobOutcome, type JobStatus, type Worker } from '../worker';
import { CapacityGauge, type CapacityConfig } from './capacity';
import { Heartbeat, heartbeatTimings, openHostsBucket } from './heartbeat';
import { PoolJobTable } from './job-table';
import { JOBS_BUCKET } from './names';
import { NatsLink, type NatsSettings } from './nats-link';
import { isFinalPoolState, type PoolJobRecord, type PoolJobSpec, type PoolJobState } from './pool-record';
import { PoolQueue } from './pool-queue';
import { Reaper } from './reaper';
import { isRevisionConflict, RecordStore } from './record-store';
import { PoolRunner, type RunnerSelf } from './runner';

export interface FleetOptions {
  worker: Worker;
  logger: Logger;
  nats: NatsSettings & { replicas: number };
  /** This daemon's name in the fleet (unique per daemon), and where clients reach it (HOST:PORT). */
  host: string;
  address: string;
  /** Pools this daemon runs jobs of; empty: it only submits. */
  pools: string[];
  capacity: CapacityConfig;
  /** A dead daemon's jobs are declared lost within this (docs/fleet.md). */
  heartbeatTtlMs: number;
  /** What a job without memory/CPU limits counts for against the capacity. */
  defaults: { memoryBytes?: number; cpu?: number };
}

export interface PoolSubmission {
  /** A client-chosen id: a repeated submission with it answers the same job. */
  id?: string;
  pool: string;
  retries: number;
  owner: string;
  spec: PoolJobSpec;
}

/** A pool job's status in the Worker's terms, plus `queued`. */
export type PoolJobStatus = Omit<JobStatus, 'state' | 'outcome' | 'isolation'> & {
  state: PoolJobState;
  /** Not carried in the pool's record: the runner's defaults (GetJob on the runner tells). */
  isolation: null;
  outcome: (Omit<JobOutcome, 'signal'> & { signal: string | null }) | null;
};

export interface PoolPlacement {
  name: string;
  runnerHost: string | null;
  runnerAddress: string | null;
  retries: number;
  attempts: number;
}

export interface PoolJob {
  status: PoolJobStatus;
  placement: PoolPlacement;
  /** This daemon runs it (StreamLogs and StopJob are answered here). */
  runsHere: boolean;
}

export const MAX_RETRIES = 10;

export class Fleet {
  readonly host: string;
  readonly address: string;
  readonly pools: readonly string[];
  #link: NatsLink;
  #table: PoolJobTable;
  #store: RecordStore;
  #queue: PoolQueue;
  #heartbeat: Heartbeat;
  #runner: PoolRunner;
  #reaper: Reaper;
  #self: RunnerSelf;

  private constructor(fields: { options: FleetOptions; link: NatsLink; table: PoolJobTable; store: RecordStore; queue: PoolQueue; heartbeat: Heartbeat; runner: PoolRunner; reaper: Reaper; self: RunnerSelf }) {
    this.host = fields.options.host;
    this.address = fields.options.address;
    this.pools = [...fields.options.pools];
    this.#link = fields.link;
    this.#table = fields.table;
    this.#store = fields.store;
    this.#queue = fields.queue;
    this.#heartbeat = fields.heartbeat;
    this.#runner = fields.runner;
    this.#reaper = fields.reaper;
    this.#self = fields.self;
  }

  static async start(options: FleetOptions): Promise<Fleet> {
    const logger = options.logger.child({ component: 'fleet' });
    const self: RunnerSelf = { host: options.host, instance: randomUUID(), address: options.address };
    const link = await NatsLink.open(options.nats, `jobworker ${options.host}`, logger);
    try {
      const timings = heartbeatTimings(options.heartbeatTtlMs);
      const jobs = await link.kvm.create(JOBS_BUCKET, { history: 1, replicas: options.nats.replicas, maxValueSize: link.maxPayload }).catch(() => link.kvm.open(JOBS_BUCKET));
      const hosts = await openHostsBucket(link.kvm, timings.keyMaxAgeMs);
      const queue = new PoolQueue(link, options.nats.replicas);
      for (const pool of options.pools) await queue.ensure(pool);
      const table = new PoolJobTable(jobs, logger);
      const store = new RecordStore(jobs, table, () => link.closed);
      const capacity = new CapacityGauge(options.worker, options.capacity, options.defaults);
      const runner = new PoolRunner(queue, store, table, options.worker, capacity, self, logger);
      const heartbeat = new Heartbeat(hosts, options.host, { instance: self.instance, address: self.address, pools: options.pools }, timings.periodMs, logger);
      const reaper = new Reaper(link, hosts, table, store, queue, self, timings, logger);
      await heartbeat.start();
      table.start();
      runner.start(options.pools);
      reaper.start();
      logger.info('in the fleet', { host: options.host, address: options.address, pools: options.pools, capacity: options.capacity, heartbeatTtlMs: options.heartbeatTtlMs });
      return new Fleet({ options, link, table, store, queue, heartbeat, runner, reaper, self });
    } catch (error) {
      await link.close();
      throw error;
    }
  }

  /**
   * Queues a job in a pool: checks the request as a start would, writes its record (queued), then
   * publishes it. A submission repeated with the same id answers the job already there; a record
   * whose publish did not land is published again (same message id: stored once).
   */
  async submit(submission: PoolSubmission): Promise<PoolJob> {
    const { pool, spec } = submission;
    if (!Number.isInteger(submission.retries) || submission.retries < 0 || submission.retries > MAX_RETRIES) {
      throw new ValidationError('retries', `must be from 0 to ${MAX_RETRIES}`);
    }
    resolveJobSpec({ command: spec.command, args: spec.args, ...(spec.env === null ? {} : { env: spec.env }), ...(spec.cwd === null ? {} : { cwd: spec.cwd }), owner: submission.owner });
    validateLimits(spec.limits);
    // Checked here, not first on the runner: a bad user would be queued and fail only there.
    if (spec.user !== null) checkJobUser('user', { ...spec.user, kind: 'requested' });
    if (!(await this.#queue.exists(pool))) {
      throw new JobworkerError('failed-precondition', `pool ${pool}: no daemon serves it (no daemon has it in fleet.pools)`);
    }
    const record: PoolJobRecord = {
      v: 1,
      id: submission.id ?? randomUUID(),
      pool,
      owner: submission.owner,
      spec,
      retries: submission.retries,
      attempts: 0,
      state: 'queued',
      host: null,
      instance: null,
      address: null,
      pid: null,
      outcome: null,
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
      log: { bytes: 0, droppedBytes: 0, truncated: false, writeError: null },
      stats: null,
      queueSeq: 0,
    };
    const size = Buffer.byteLength(JSON.stringify(record));
    const room = this.#link.maxPayload - 4096; // the record grows by its status later
    if (size > room) throw new ValidationError('args', `a pool job's command, args and env must fit NATS's message limit: ${size} bytes, at most ${room}`);

    let created = record;
    try {
      await this.#store.create(record);
    } catch (error) {
      if (!isRevisionConflict(error)) throw unavailable('could not queue the job', error, record.id);
      const existing = await this.#store.read(record.id).catch((readError: unknown) => {
        throw unavailable('could not read the job', readError, record.id);
      });
      // Another identity's job under that id: say only that the id is taken.
      if (existing === null || existing.record.owner !== submission.owner) throw new JobworkerError('already-exists', `job id ${record.id} is already in use; choose another`);
      if (existing.record.state !== 'queued' || existing.record.queueSeq !== 0) return this.#view(existing.record);
      created = existing.record;
    }
    let sequence: number;
    try {
      sequence = await this.#queue.publish(pool, created.id, created.attempts === 0 ? created.id : `${created.id}.${created.attempts}`);
    } catch (error) {
      throw unavailable('the job is recorded but NATS did not confirm its queueing', error, created.id);
    }
    const updated = await this.#store
      .modify(created.id, (current) => (current.state === 'queued' && current.queueSeq === 0 ? { ...current, queueSeq: sequence } : null))
      .catch(() => null);
    return this.#view(updated?.record ?? created);
  }

  get(id: string): PoolJob | undefined {
    const entry = this.#table.get(id);
    return entry === undefined ? undefined : this.#view(entry.record);
  }

  list(): PoolJob[] {
    return this.#table.records().map((record) => this.#view(record));
  }

  /** Calls `listener` after every change of a pool job's record (null `previousState`: first seen). */
  subscribe(listener: (job: PoolJob, previousState: PoolJobState | null) => void): () => void {
    return this.#table.subscribe((current, previous) => {
      if (current !== null) listener(this.#view(current), previous?.state ?? null);
    });
  }

  /**
   * Stops a queued job: its record becomes stopped (so no daemon will claim it) and its message is
   * deleted from the pool's stream. null when it is no longer queued (claimed meanwhile: stop it
   * where it runs).
   */
  async stopQueued(id: string, by: string): Promise<{ job: PoolJob; alreadyFinished: boolean } | null> {
    const now = Date.now();
    let outcome: 'stopped' | 'finished' | 'claimed' = 'claimed';
    const result = await this.#store
      .modify(id, (record) => {
        if (isFinalPoolState(record.state)) {
          outcome = 'finished';
          return null;
        }
        if (record.state !== 'queued') {
          outcome = 'claimed';
          return null;
        }
        outcome = 'stopped';
        return { ...record, state: 'stopped', outcome: { exitCode: null, signal: null, oomKilled: false, stoppedBy: by, reason: `stopped by ${by} while queued` }, finishedAt: now };
      })
      .catch((error: unknown) => {
        throw unavailable('could not stop the queued job', error, id);
      });
    if (result === null) throw new JobworkerError('not-found', `job ${id} not found`);
    if (outcome === 'claimed') return null;
    if (outcome === 'stopped' && result.record.queueSeq > 0) await this.#queue.remove(result.record.pool, result.record.queueSeq);
    return { job: this.#view(result.record), alreadyFinished: outcome === 'finished' };
  }

  /** Deletes a finished pool job's record; the daemon that ran it removes its copy when it sees that. */
  async remove(id: string): Promise<void> {
    const entry = this.#table.get(id);
    if (entry !== undefined && !isFinalPoolState(entry.record.state)) {
      throw new JobworkerError('failed-precondition', `job ${id} is ${entry.record.state}; stop it before removing it`);
    }
    await this.#store.remove(id).catch((error: unknown) => {
      throw unavailable('could not remove the job', error, id);
    });
  }

  /** Stops taking jobs from the pools (shutdown, before the Worker stops its jobs). */
  async stopTaking(): Promise<void> {
    this.#reaper.stop();
    await this.#runner.stopTaking();
  }

  /** Writes what is left of this daemon's jobs' records, deletes its heartbeat, closes the link. */
  async close(): Promise<void> {
    await this.stopTaking();
    await this.#runner.flush(5000);
    this.#table.stop();
    await this.#heartbeat.stop();
    await this.#link.close();
  }

  #view(record: PoolJobRecord): PoolJob {
    return {
      status: {
        id: record.id,
        owner: record.owner,
        // Names and labels are not carried by pool jobs (StartJob refuses them).
        name: null,
        labels: {},
        command: record.spec.command,
        args: record.spec.args,
        argsOmitted: 0, // a pool record carries the whole spec
        cwd: record.spec.cwd ?? '/',
        limits: record.spec.limits,
        user: record.spec.user === null ? null : { uid: record.spec.user.uid, gid: record.spec.user.gid, groups: record.spec.user.groups ?? [], name: null, kind: 'requested' },
        isolation: null,
        scratchDir: null,
        maxRuntimeMs: null,
        state: record.state,
        pid: record.pid,
        // A pool job has no maximum runtime (StartJob refuses one): it never timed out.
        outcome: record.outcome === null ? null : { ...record.outcome, timedOut: false },
        createdAt: new Date(record.createdAt),
        startedAt: record.startedAt === null ? null : new Date(record.startedAt),
        finishedAt: record.finishedAt === null ? null : new Date(record.finishedAt),
        log: record.log,
        stats: record.stats,
      },
      placement: { name: record.pool, runnerHost: record.host, runnerAddress: record.address, retries: record.retries, attempts: record.attempts },
      runsHere: record.instance === this.#self.instance,
    };
  }
}

function unavailable(what: string, cause: unknown, id: string): JobworkerError {
  return new JobworkerError('unavailable', `${what} (NATS: ${String(cause).slice(0, 200)}); ask again with the same job id ${id}`, { cause });
}
