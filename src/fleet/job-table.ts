// Every pool job's record, mirrored in memory from the jobs bucket by a KV watch: what ListJobs,
// GetJob and WatchJobs answer for pool jobs on any daemon, and what the reaper scans. Reads are
// local; the mirror follows the bucket within the watch's delivery time. A record that fails the
// schema is left out (and logged once per revision).
import type { KV, KvEntry } from '@nats-io/kv';

import type { Logger } from '../logger';
import { decodePoolRecord, type PoolJobRecord } from './pool-record';

export interface TableEntry {
  record: PoolJobRecord;
  revision: number;
}

/** A change: `previous` null for a record seen first; `current` null when it was deleted. */
export type TableListener = (current: PoolJobRecord | null, previous: PoolJobRecord | null) => void;

export class PoolJobTable {
  #entries = new Map<string, TableEntry>();
  #listeners = new Set<TableListener>();
  #stopped = false;
  #iterator: { stop(): void } | null = null;

  constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
  ) {}

  /** Starts following the bucket (and follows it again if the watch ever ends). */
  start(): void {
    void this.#follow();
  }

  stop(): void {
    this.#stopped = true;
    this.#iterator?.stop();
  }

  get(id: string): TableEntry | undefined {
    return this.#entries.get(id);
  }

  records(): PoolJobRecord[] {
    return [...this.#entries.values()].map((entry) => entry.record);
  }

  subscribe(listener: TableListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Takes in what this daemon itself just wrote, so its own reads need not wait for the watch. */
  noteWritten(record: PoolJobRecord, revision: number): void {
    this.#apply(record.id, record, revision);
  }

  async #follow(): Promise<void> {
    while (!this.#stopped) {
      try {
        const watch = await this.kv.watch();
        this.#iterator = watch;
        if (this.#stopped) watch.stop();
        for await (const entry of watch) this.#receive(entry);
      } catch (error) {
        if (!this.#stopped) this.logger.warn('watch of pool jobs failed; watching again', { error: String(error) });
      }
      if (!this.#stopped) await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  #receive(entry: KvEntry): void {
    if (entry.operation !== 'PUT') {
      this.#apply(entry.key, null, entry.revision);
      return;
    }
    let record: PoolJobRecord;
    try {
      record = decodePoolRecord(entry.key, entry.value);
    } catch (error) {
      this.logger.warn('ignored a pool job record that is not valid', { key: entry.key.slice(0, 64), revision: entry.revision, error: (error as Error).message });
      return;
    }
    this.#apply(entry.key, record, entry.revision);
  }

  #apply(id: string, record: PoolJobRecord | null, revision: number): void {
    const known = this.#entries.get(id);
    if (known !== undefined && known.revision >= revision) return; // our own write seen again, or older
    if (record === null) {
      if (known === undefined) return;
      this.#entries.delete(id);
    } else {
      this.#entries.set(id, { record, revision });
    }
    for (const listener of this.#listeners) listener(record, known?.record ?? null);
  }
}
