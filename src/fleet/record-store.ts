// The jobs bucket with compare-and-set: every change to a pool job's record is read, changed and
// written back under the revision it was read at, so two daemons never both claim a job, and a
// reaper and a runner never both finish it. Records read back are checked (pool-record.ts).
import type { KV } from '@nats-io/kv';

import type { PoolJobTable } from './job-table';
import { decodePoolRecord, encodePoolRecord, type PoolJobRecord } from './pool-record';

export interface StoredRecord {
  record: PoolJobRecord;
  revision: number;
}

/** JetStream's answer when the expected last revision does not match ("wrong last sequence"). */
const WRONG_LAST_SEQUENCE = 10071;

export function isRevisionConflict(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && (error as { code: unknown }).code === WRONG_LAST_SEQUENCE;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class RecordStore {
  constructor(
    private readonly kv: KV,
    private readonly table: PoolJobTable,
    private readonly isClosed: () => boolean,
  ) {}

  /** Writes a new record; a record already under that id throws (isRevisionConflict). */
  async create(record: PoolJobRecord): Promise<number> {
    const revision = await this.kv.create(record.id, encodePoolRecord(record));
    this.table.noteWritten(record, revision);
    return revision;
  }

  /** The record as the bucket has it now; null if there is none (or it is not valid). */
  async read(id: string): Promise<StoredRecord | null> {
    const entry = await this.kv.get(id);
    if (entry === null || entry.operation !== 'PUT') return null;
    return { record: decodePoolRecord(entry.key, entry.value), revision: entry.revision };
  }

  /**
   * Applies `change` to the current record and writes it under the revision it read, again on a
   * conflict; `change` answers null to leave the record as it is. Errors of the link (NATS away) are
   * retried with back-off until the daemon closes when `persist` is set, else thrown.
   */
  async modify(id: string, change: (record: PoolJobRecord) => PoolJobRecord | null, persist = false): Promise<StoredRecord | null> {
    let backoffMs = 100;
    for (;;) {
      try {
        const current = await this.read(id);
        if (current === null) return null;
        const next = change(current.record);
        if (next === null) return current;
        const revision = await this.kv.update(id, encodePoolRecord(next), current.revision);
        this.table.noteWritten(next, revision);
        return { record: next, revision };
      } catch (error) {
        if (isRevisionConflict(error)) continue;
        if (!persist || this.isClosed()) throw error;
        await delay(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    }
  }

  async remove(id: string): Promise<void> {
    await this.kv.delete(id);
  }
}
