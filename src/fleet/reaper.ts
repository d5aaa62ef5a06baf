// Lost runs: every scan, each claimed pool job (starting or running) whose runner's heartbeat is gone
// — or names another process instance: the daemon restarted — is declared lost, by compare-and-set
// so one daemon does it once. A job that asked for retries and has some left is queued again
// instead (a new message id per attempt). At most once by default: a lost run is never re-run
// unless the job asked for it.
import type { KV } from '@nats-io/kv';

import type { Logger } from '../logger';
import { liveInstanceOf } from './heartbeat';
import type { PoolJobTable } from './job-table';
import type { NatsLink } from './nats-link';
import type { PoolJobRecord } from './pool-record';
import type { PoolQueue } from './pool-queue';
import type { RecordStore } from './record-store';
import type { RunnerSelf } from './runner';

/** How long a queued record may go without a confirmed message before it is published again. */
const UNPUBLISHED_GRACE_MS = 15_000;

export class Reaper {
  #timer: NodeJS.Timeout | null = null;
  #scanning = false;
  /** Queued records seen without a message sequence, and since when (a publish that never landed). */
  #unpublished = new Map<string, number>();

  constructor(
    private readonly link: NatsLink,
    private readonly hosts: KV,
    private readonly table: PoolJobTable,
    private readonly store: RecordStore,
    private readonly queue: PoolQueue,
    private readonly self: RunnerSelf,
    private readonly timings: { keyMaxAgeMs: number; periodMs: number },
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#scanning) return;
      this.#scanning = true;
      this.scan()
        .catch((error: unknown) => this.logger.warn('scan for lost pool jobs failed', { error: String(error) }))
        .finally(() => (this.#scanning = false));
    }, this.timings.periodMs);
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
  }

  async scan(): Promise<void> {
    await this.#requeueUnpublished();
    const claimed = this.table.records().filter((record) => record.state === 'starting' || record.state === 'running');
    if (claimed.length === 0) return;
    // A key missing right after this daemon (re)connected may be NATS having just restarted: every
    // daemon gets a heartbeat's lifetime to beat again before anyone is declared gone.
    const othersTrusted = this.link.connectedForMs() >= this.timings.keyMaxAgeMs;
    const live = new Map<string, string | null>([[this.self.host, this.self.instance]]);
    for (const record of claimed) {
      const host = record.host!;
      if (host !== this.self.host && !othersTrusted) continue;
      if (!live.has(host)) live.set(host, await liveInstanceOf(this.hosts, host));
      if (live.get(host) === record.instance) continue;
      const why = host === this.self.host ? `the daemon on ${host} restarted while it ran` : `the daemon on ${host} stopped sending heartbeats`;
      await this.#lose(record, why);
    }
  }

  /**
   * A queued record whose message was never confirmed (the submitting daemon or a reaper lost NATS
   * between the record and the publish) is published again after a while: the message id makes a
   * repeat harmless, and only one claim of a queued record can win.
   */
  async #requeueUnpublished(): Promise<void> {
    const now = Date.now();
    const waiting = new Set<string>();
    for (const record of this.table.records()) {
      if (record.state !== 'queued' || record.queueSeq !== 0) continue;
      waiting.add(record.id);
      const since = this.#unpublished.get(record.id) ?? now;
      this.#unpublished.set(record.id, since);
      if (now - since < UNPUBLISHED_GRACE_MS) continue;
      const sequence = await this.queue.publish(record.pool, record.id, record.attempts === 0 ? record.id : `${record.id}.${record.attempts}`);
      await this.store.modify(record.id, (current) => (current.state === 'queued' && current.queueSeq === 0 ? { ...current, queueSeq: sequence } : null));
      this.logger.warn('pool job queued again: its message was never confirmed', { job: record.id, pool: record.pool });
    }
    for (const id of this.#unpublished.keys()) if (!waiting.has(id)) this.#unpublished.delete(id);
  }

  async #lose(seen: PoolJobRecord, why: string): Promise<void> {
    const now = Date.now();
    const result = await this.store.modify(seen.id, (record) => {
      if (record.instance !== seen.instance || (record.state !== 'starting' && record.state !== 'running')) return null;
      if (record.attempts <= record.retries) {
        return { ...record, state: 'queued', host: null, instance: null, address: null, pid: null, startedAt: null, finishedAt: null, outcome: null, stats: null, log: { bytes: 0, droppedBytes: 0, truncated: false, writeError: null }, queueSeq: 0 };
      }
      return { ...record, state: 'lost', outcome: { exitCode: null, signal: null, oomKilled: false, stoppedBy: null, reason: `lost: ${why}` }, finishedAt: now };
    });
    if (result === null || result.record.instance !== null || result.record.state !== 'queued') {
      if (result?.record.state === 'lost') this.logger.warn('pool job lost', { job: seen.id, host: seen.host, why });
      return;
    }
    this.logger.warn('pool job lost; queued again (it asked for retries)', { job: seen.id, host: seen.host, attempt: result.record.attempts, retries: result.record.retries, why });
    // One message id per attempt: a reaper that repeats this publish adds nothing.
    const sequence = await this.queue.publish(result.record.pool, seen.id, `${seen.id}.${result.record.attempts}`);
    await this.store.modify(seen.id, (record) => (record.state === 'queued' && record.queueSeq === 0 ? { ...record, queueSeq: sequence } : null)).catch(() => undefined);
  }
}
