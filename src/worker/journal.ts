// The journal's writing side: entries appended with one write(2) each to a file opened O_APPEND,
// durable ones followed by a shared fdatasync (group commit), and the file compacted while the
// Worker runs, in the background, whenever it is `ratio` times the size of its live records.
//
// Compaction, crash-safe and without holding up appends: the live records are written to
// `journal.tmp` (a new file) a batch at a time, while appends keep going to the journal (still the
// one a crash would leave) and are also kept in a tail. Then, in turn with the syncs: the tail is
// written to the new file, which is fdatasync'd; the entries appended meanwhile are written too
// and, with no await between them, the new file is renamed over the journal and becomes the one
// appended to; then the directory and the new file are synced before any later sync is reported.
// An entry is in the old file until the rename and in the new one from its snapshot or tail, so a
// crash at any point leaves a journal holding every entry whose durability was reported.
import { fstatSync, renameSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

import { errorCode, systemError } from '../errors';
import { encodeJournalLine, type JournalEntry } from './journal-codec';
import type { JobRecord } from './job-record';
import { CREATE_NEW_APPEND, removeIfPresent, syncDirectory } from './state-files';

export interface CompactionPolicy {
  /** Compact when the journal is this many times the size of its live records… */
  ratio: number;
  /** …and at least this big. */
  minBytes: number;
}

export const DEFAULT_COMPACTION: CompactionPolicy = { ratio: 4, minBytes: 1 << 20 };

/** Records encoded per write while compacting (between them, appends and starts go on). */
const SNAPSHOT_BATCH = 256;

export interface JournalStats {
  bytes: number;
  liveBytes: number;
  compactions: number;
}

export class Journal {
  readonly path: string;
  #file: FileHandle;
  #bytes: number;
  /** Every job with a record in the journal: its record (the live object) and its last line's size. */
  #live = new Map<string, { record: JobRecord; bytes: number }>();
  #liveBytes = 0;
  /** Syncs and the end of compactions, one after another. */
  #queue: Promise<void> = Promise.resolve();
  #syncWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #syncScheduled = false;
  #compaction: Promise<void> | null = null;
  /** Lines appended while a compaction runs, for the new file. */
  #tail: string[] | null = null;
  #compactAt: number;
  #compactions = 0;
  #closed = false;

  private constructor(
    journalPath: string,
    file: FileHandle,
    private readonly policy: CompactionPolicy,
    private readonly warn: (message: string, details: Record<string, unknown>) => void,
  ) {
    this.path = journalPath;
    this.#file = file;
    this.#bytes = 0;
    this.#compactAt = policy.minBytes;
  }

  /**
   * Replaces the journal with one holding these records only (temp file, fdatasync, rename,
   * directory fsync) and opens it for appending. The records are the live objects the Worker
   * changes; later compactions write them as they are then.
   */
  static async create(
    journalPath: string,
    records: Iterable<JobRecord>,
    policy: CompactionPolicy,
    warn: (message: string, details: Record<string, unknown>) => void,
  ): Promise<Journal> {
    const temp = `${journalPath}.tmp`;
    const live = new Map<string, { record: JobRecord; bytes: number }>();
    let file: FileHandle | null = null;
    try {
      await removeIfPresent(temp, 'remove stale journal temp file');
      file = await open(temp, CREATE_NEW_APPEND, 0o600);
      await writeRecords(file, records, (record, bytes) => live.set(record.id, { record, bytes }));
      await file.datasync();
      renameSync(temp, journalPath);
      await syncDirectory(path.dirname(journalPath));
    } catch (error) {
      await file?.close().catch(() => undefined);
      throw systemError('rewrite journal', journalPath, error);
    }
    const journal = new Journal(journalPath, file, policy, warn);
    journal.#bytes = fstatSync(file.fd).size;
    journal.#live = live;
    for (const { bytes } of live.values()) journal.#liveBytes += bytes;
    journal.#compactAt = Math.max(policy.minBytes, journal.#bytes);
    return journal;
  }

  /** Appends the record; `durable` also waits for it to be on disk (final states). */
  put(record: JobRecord, durable: boolean): Promise<void> {
    let bytes: number;
    try {
      bytes = this.#append({ op: 'put', record });
    } catch (error) {
      return Promise.reject(error);
    }
    const previous = this.#live.get(record.id);
    this.#liveBytes += bytes - (previous?.bytes ?? 0);
    this.#live.set(record.id, { record, bytes });
    this.#maybeCompact();
    return durable ? this.#sync() : Promise.resolve();
  }

  /**
   * Appends the removal of a job's record (nothing, if none was ever written: a failed start).
   * Throws, synchronously, if it could not be written.
   */
  remove(id: string): void {
    const previous = this.#live.get(id);
    if (previous === undefined) return;
    this.#append({ op: 'remove', id });
    this.#liveBytes -= previous.bytes;
    this.#live.delete(id);
    this.#maybeCompact();
  }

  stats(): JournalStats {
    return { bytes: this.#bytes, liveBytes: this.#liveBytes, compactions: this.#compactions };
  }

  /** Resolves when the compaction under way, if any, is over. */
  async compacted(): Promise<void> {
    await this.#compaction;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#compaction;
    await this.#queue;
    await this.#file.close();
  }

  /**
   * One line, one write(2), on this thread: a page-cache append takes microseconds, less than a trip
   * through the libuv threadpool (whose wake-up alone costs tens of microseconds on a VM). Only
   * fdatasync, which waits for the disk, goes to the pool. Returns the line's size.
   */
  #append(entry: JournalEntry): number {
    if (this.#closed) throw new Error('journal closed');
    const line = encodeJournalLine(entry);
    const bytes = Buffer.from(line);
    let written: number;
    try {
      written = writeSync(this.#file.fd, bytes);
    } catch (error) {
      throw systemError('append to journal', this.path, error);
    }
    if (written !== bytes.length) {
      // The disk filled mid-line: end the torn line (it fails its CRC at replay) so that the next
      // entry starts a line of its own.
      try {
        this.#bytes += written + writeSync(this.#file.fd, '\n');
      } catch {
        // still full: replay skips the torn line and whatever was glued to it
      }
      throw systemError('append to journal', this.path, Object.assign(new Error('short write'), { code: 'ENOSPC' }));
    }
    this.#bytes += written;
    this.#tail?.push(line);
    return written;
  }

  /** fdatasync, shared by every durable append that arrives while one is pending (group commit). */
  #sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#syncWaiters.push({ resolve, reject });
      if (this.#syncScheduled) return;
      this.#syncScheduled = true;
      // One sync covers every append made before it starts.
      void this.#inTurn(async () => {
        const waiters = this.#syncWaiters.splice(0);
        this.#syncScheduled = false;
        try {
          await this.#file.datasync();
          for (const w of waiters) w.resolve();
        } catch (error) {
          const failure = systemError('sync journal', this.path, error);
          for (const w of waiters) w.reject(failure);
        }
      });
    });
  }

  /** Runs `step` after every sync or compaction step queued before it. */
  #inTurn<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(step);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #maybeCompact(): void {
    if (this.#compaction !== null || this.#closed) return;
    if (this.#bytes < this.#compactAt || this.#bytes < this.policy.ratio * this.#liveBytes) return;
    this.#compaction = this.#compact()
      .then(
        () => {
          this.#compactions++;
          this.#compactAt = Math.max(this.policy.minBytes, this.#bytes);
        },
        (error: unknown) => {
          // Only an optimization: appends go on to the old journal. Try again once it has grown
          // by half (a full or read-only disk would otherwise be retried at every append).
          this.#compactAt = this.#bytes + Math.max(this.policy.minBytes, this.#bytes / 2);
          this.warn('journal not compacted', { journal: this.path, bytes: this.#bytes, error: String(error) });
        },
      )
      .finally(() => {
        this.#compaction = null;
      });
  }

  async #compact(): Promise<void> {
    const temp = `${this.path}.tmp`;
    this.#tail = [];
    let file: FileHandle | null = null;
    let swapped = false;
    try {
      await removeIfPresent(temp, 'remove stale journal temp file');
      file = await open(temp, CREATE_NEW_APPEND, 0o600);
      const next = file;
      // Map iteration sees entries added meanwhile and skips those deleted before it gets to them;
      // the tail replays whatever changed after a record was written.
      await writeRecords(next, [...this.#live.values()].map((live) => live.record), () => undefined);
      await this.#inTurn(async () => {
        writeWholeSync(next.fd, this.#takeTail());
        await next.datasync();
        // From here to the swap, nothing may be appended that the new file would miss: no await.
        writeWholeSync(next.fd, this.#takeTail());
        renameSync(temp, this.path);
        const old = this.#file;
        this.#file = next;
        this.#tail = null;
        this.#bytes = fstatSync(next.fd).size;
        swapped = true;
        await old.close().catch(() => undefined);
        await syncDirectory(path.dirname(this.path));
        await next.datasync();
      });
    } catch (error) {
      if (!swapped) {
        await file?.close().catch(() => undefined);
        await removeIfPresent(temp, 'remove journal temp file').catch(() => undefined);
      }
      throw errorCode(error) === undefined ? error : systemError('compact journal', this.path, error);
    } finally {
      this.#tail = null;
    }
  }

  #takeTail(): string {
    const lines = this.#tail ?? [];
    this.#tail = [];
    return lines.join('');
  }
}

/** Writes the records as journal lines, SNAPSHOT_BATCH per write. */
async function writeRecords(file: FileHandle, records: Iterable<JobRecord>, written: (record: JobRecord, bytes: number) => void): Promise<void> {
  let batch: string[] = [];
  for (const record of records) {
    const line = encodeJournalLine({ op: 'put', record });
    batch.push(line);
    written(record, Buffer.byteLength(line));
    if (batch.length >= SNAPSHOT_BATCH) {
      await writeWhole(file, batch.join(''));
      batch = [];
    }
  }
  if (batch.length > 0) await writeWhole(file, batch.join(''));
}

// A rewritten journal replaces the old one, so every byte of it must be there: one write call may
// write less than asked (a disk that fills, a file size limit) without failing, and a file missing
// its end would lose those jobs' records at the rename.

function shortWrite(written: number, wanted: number): Error {
  return Object.assign(new Error(`short write: ${written} of ${wanted} bytes (disk full?)`), { code: 'ENOSPC' });
}

function writeWholeSync(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  const written = writeSync(fd, bytes);
  if (written !== bytes.length) throw shortWrite(written, bytes.length);
}

async function writeWhole(file: FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  const { bytesWritten } = await file.write(bytes);
  if (bytesWritten !== bytes.length) throw shortWrite(bytesWritten, bytes.length);
}
