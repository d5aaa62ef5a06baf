// Running pool jobs here: for each pool this daemon serves, fetch one message at a time while there
// is room, claim the job in the jobs bucket (compare-and-set from queued: one daemon wins), ack the
// message, and start the job with Worker.start as the server does — owned by the identity that
// submitted it, with the id it was queued under. Every state change of such a job is written back
// to its record. A record that stops naming this process (the reaper declared the run lost while
// this daemon was cut off) gets its job stopped here.
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';

import { JobworkerError } from '../errors';
import type { Logger } from '../logger';
import { isFinal, type JobStatus, type Worker } from '../worker';
import type { CapacityGauge } from './capacity';
import type { PoolJobTable } from './job-table';
import { isFinalPoolState, type PoolJobRecord } from './pool-record';
import { jobIdOfMessage, PoolQueue } from './pool-queue';
import type { RecordStore } from './record-store';

export interface RunnerSelf {
  host: string;
  instance: string;
  address: string;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class PoolRunner {
  /** Pool jobs this process started whose record is not final yet. */
  #mine = new Set<string>();
  #writes = new Map<string, Promise<void>>();
  #dirty = new Set<string>();
  #stopped = false;
  #loops: Promise<void>[] = [];
  #batches = new Set<ConsumerMessages>();
  #wakers = new Set<() => void>();
  #unsubscribe: (() => void)[] = [];

  constructor(
    private readonly queue: PoolQueue,
    private readonly store: RecordStore,
    private readonly table: PoolJobTable,
    private readonly worker: Worker,
    private readonly capacity: CapacityGauge,
    private readonly self: RunnerSelf,
    private readonly logger: Logger,
  ) {}

  start(pools: readonly string[]): void {
    this.#unsubscribe.push(
      this.worker.subscribe((event) => {
        if (this.#mine.has(event.status.id)) this.#writeStatus(event.status.id);
        if (isFinal(event.status.state)) this.#wake();
      }),
      this.table.subscribe((current, previous) => this.#recordChanged(current, previous)),
    );
    for (const pool of pools) this.#loops.push(this.#serve(pool));
  }

  /** Stops fetching (what was claimed keeps running); resolves when the fetch loops have ended. */
  async stopTaking(): Promise<void> {
    this.#stopped = true;
    for (const batch of this.#batches) batch.stop();
    this.#wake();
    await Promise.all(this.#loops);
  }

  /** Waits (at most `timeoutMs`) for the records of this daemon's jobs to be written. */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = delay(timeoutMs);
    while (this.#writes.size > 0) await Promise.race([Promise.all(this.#writes.values()), deadline]).then(() => undefined);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
  }

  runsHere(id: string): boolean {
    return this.#mine.has(id);
  }

  #wake(): void {
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
  }

  /** Resolves at the next job end here (or after `ms`). */
  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wakers.add(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #serve(pool: string): Promise<void> {
    let consumer: Consumer | null = null;
    let backoffMs = 200;
    while (!this.#stopped) {
      if (!this.capacity.hasSlot()) {
        await this.#changed(1000);
        continue;
      }
      try {
        consumer ??= await this.queue.consumer(pool);
        const batch = await consumer.fetch({ max_messages: 1, expires: 5000 });
        this.#batches.add(batch);
        try {
          for await (const message of batch) await this.#take(pool, message);
        } finally {
          this.#batches.delete(batch);
        }
        backoffMs = 200;
      } catch (error) {
        if (this.#stopped) break;
        this.logger.warn('fetching from the pool failed; trying again', { pool, error: String(error) });
        consumer = null;
        await delay(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    }
  }

  async #take(pool: string, message: JsMsg): Promise<void> {
    const id = jobIdOfMessage(message.data);
    if (id === null) {
      this.logger.warn('dropped a pool message that names no job', { pool, sequence: message.seq });
      message.term();
      return;
    }
    // The mirror usually has the record queued already (it was written before the message); anything
    // else is asked of NATS before the message is dropped (the mirror may lag a requeue).
    const mirrored = this.table.get(id);
    const current = mirrored?.record.state === 'queued' ? mirrored : await this.store.read(id).catch((error: unknown) => {
      this.logger.warn('pool job record unreadable; message handed back', { job: id, error: String(error) });
      return undefined;
    });
    if (current === undefined) {
      message.nak(1000);
      return;
    }
    // Removed, claimed already (a redelivery), stopped while queued, or not this pool's: nothing to run.
    if (current === null || current.record.state !== 'queued' || current.record.pool !== pool) {
      message.ack();
      return;
    }
    const ask = this.capacity.askOf(current.record.spec.limits);
    if (!this.capacity.fitsNow(ask)) {
      const everFits = this.capacity.everFits(ask);
      message.nak(PoolQueue.nakDelayMs(everFits));
      if (everFits) await this.#changed(1000);
      return;
    }
    const release = this.capacity.reserve(ask);
    try {
      const claimed = await this.store.modify(id, (record) => (record.state === 'queued' ? this.#claim(record) : null));
      if (claimed === null || claimed.record.instance !== this.self.instance || claimed.record.state !== 'starting') {
        message.ack();
        return;
      }
      this.#mine.add(id);
      // Not waited for: if the ack is lost the message comes back, and its record is no longer queued.
      message.ack();
      await this.#run(claimed.record);
    } catch (error) {
      // The claim itself failed (NATS away): hand the message back (if NATS hears it; else it comes
      // back after the ack wait).
      this.logger.warn('claim of a pool job failed', { job: id, error: String(error) });
      if (!this.#mine.has(id)) message.nak(1000);
    } finally {
      release();
    }
  }

  #claim(record: PoolJobRecord): PoolJobRecord {
    return { ...record, state: 'starting', host: this.self.host, instance: this.self.instance, address: this.self.address, attempts: record.attempts + 1, queueSeq: 0 };
  }

  async #run(record: PoolJobRecord): Promise<void> {
    const { spec } = record;
    try {
      // A retry on a host that ran an earlier attempt: that attempt's local record and log make way.
      const earlier = this.worker.get(record.id);
      // Another identity's job of this host under the same id (a client chose it): never touched.
      if (earlier !== undefined && earlier.owner !== record.owner) {
        throw new JobworkerError('already-exists', `job id ${record.id} is another identity's job on this host`);
      }
      if (earlier !== undefined && isFinal(earlier.state)) await this.worker.remove(record.id);
      await this.worker.start(
        {
          command: spec.command,
          args: spec.args,
          ...(spec.env === null ? {} : { env: spec.env }),
          ...(spec.cwd === null ? {} : { cwd: spec.cwd }),
          limits: spec.limits,
          owner: record.owner,
          ...(spec.user === null ? {} : { user: spec.user }),
        },
        { id: record.id },
      );
    } catch (error) {
      this.#mine.delete(record.id);
      const reason = `not started on ${this.self.host}: ${(error as Error).message}`.slice(0, 1000);
      await this.store
        .modify(record.id, (current) => (current.instance === this.self.instance && !isFinalPoolState(current.state) ? { ...current, state: 'failed', outcome: { exitCode: null, signal: null, oomKilled: false, stoppedBy: null, reason }, finishedAt: Date.now() } : null), true)
        .catch((writeError: unknown) => this.logger.warn('pool job record not written', { job: record.id, error: String(writeError) }));
    }
  }

  /** Writes the local job's latest status to its record; changes that come while one is written are coalesced. */
  #writeStatus(id: string): void {
    this.#dirty.add(id);
    if (this.#writes.has(id)) return;
    const write = (async () => {
      while (this.#dirty.delete(id)) {
        const job = this.worker.get(id);
        if (job === undefined) break;
        const status = job.status();
        const written = await this.store
          .modify(id, (record) => (record.instance === this.self.instance && !isFinalPoolState(record.state) ? withStatus(record, status) : null), true)
          .catch((error: unknown) => {
            this.logger.warn('pool job record not written', { job: id, error: String(error) });
            return null;
          });
        if (written === null || written.record.instance !== this.self.instance || isFinalPoolState(written.record.state)) {
          this.#mine.delete(id);
          if (written !== null && written.record.instance !== this.self.instance) this.#fence(id);
          break;
        }
      }
    })().finally(() => this.#writes.delete(id));
    this.#writes.set(id, write);
  }

  #recordChanged(current: PoolJobRecord | null, previous: PoolJobRecord | null): void {
    const id = current?.id ?? previous?.id;
    if (id === undefined) return;
    if (current === null) {
      // RemoveJob of a finished pool job: this host's copy goes too.
      const local = this.worker.get(id);
      if (local !== undefined && isFinal(local.state) && !this.#mine.has(id)) {
        this.worker.remove(id).catch((error: unknown) => this.logger.warn('local copy of a removed pool job not removed', { job: id, error: String(error) }));
      }
      return;
    }
    if (this.#mine.has(id) && current.instance !== this.self.instance) this.#fence(id);
  }

  /** The record no longer names this process as the runner: the run here must not go on. */
  #fence(id: string): void {
    this.#mine.delete(id);
    const job = this.worker.get(id);
    if (job === undefined || isFinal(job.state)) return;
    this.logger.warn('stopping a pool job whose run was declared lost while this daemon was cut off', { job: id });
    job.stop({ by: 'fleet (run declared lost)', graceMs: 0 }).catch(() => undefined);
  }
}

/** The record with a local job's status (state, pid, outcome, times, log, stats). */
export function withStatus(record: PoolJobRecord, status: JobStatus): PoolJobRecord {
  return {
    ...record,
    state: status.state,
    pid: status.pid,
    // Field by field: the pool record's schema is closed (a pool job has no maximum runtime, so no
    // timedOut), and a record with an unknown key is ignored by every daemon.
    outcome:
      status.outcome === null
        ? null
        : { exitCode: status.outcome.exitCode, signal: status.outcome.signal, oomKilled: status.outcome.oomKilled, stoppedBy: status.outcome.stoppedBy, reason: status.outcome.reason },
    startedAt: status.startedAt?.getTime() ?? null,
    finishedAt: status.finishedAt?.getTime() ?? null,
    log: { ...status.log },
    stats: status.stats,
  };
}
