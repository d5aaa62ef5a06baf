// The state directory:
//
//   <stateDir>/journal          job records, one JSON line per change, appended
//   <stateDir>/logs/<id>.log    each job's output (docs/log-format.md)
//
// Why a journal and not a job.json per job: on ext4, allocating an inode near recently deleted ones
// is slow (the allocator skips them one by one: `recently_deleted`), and a file per record and per
// update (temp + rename) made the state directory cost as much as the rest of a job put together
// (measured: 614 vs 1,220 start+finish per second without cgroups). Now a job creates one file, its
// log; its records are appended to one file.
//
// Spare logs: a removed job's log (up to 1 MiB) is not deleted but renamed to logs/.spare-<n> and
// cut back to its header (its output is gone at once), and a new job's log is a spare renamed (the
// addon does it, off the JS thread) and overwritten in place. Allocating a new inode is the slow
// part of creating a file on ext4 without a journal (`find_inode_bit` skips every inode freed in the
// last minutes, one by one: ~0.1-0.25 ms per file here once files churn), and freeing a block is a
// synchronous discard with -o discard; a rename takes ~10 µs. At most MAX_SPARE_LOGS are kept. When
// few are left, new empty ones are made ahead, in one batch on the threadpool, so that a start does
// not wait for an inode either.
//
// Atomicity: each entry is one line, written with one write(2) to a file opened O_APPEND, and carries
// a CRC-32 of its JSON; a line cut short by a crash, or damaged, fails its check and is skipped, so
// a crash leaves each record either as it was or as it became, never half. Durable entries (a job's
// final state) are followed by fdatasync before anyone is told; concurrent ones share one
// (group commit). At open, after recovery, the journal is rewritten with the live records only
// (temp file, fsync, rename, directory fsync), so it does not grow without bound.
import { renameSync, truncateSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, truncate, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';

import type { CgroupStats } from '../cgroup/types';
import { FILE_HEADER_SIZE } from '../logs/format';
import { errorCode, systemError } from '../errors';
import { isJobId } from '../job-id';
import type { ResolvedJobSpec } from './job-spec';
import type { JobOutcome, JobState } from './job-state';

export interface JobLogInfo {
  bytes: number;
  droppedBytes: number;
  truncated: boolean;
  writeError: string | null;
}

/** A job's record: what the journal keeps of it. */
export interface JobRecord {
  version: 1;
  id: string;
  spec: ResolvedJobSpec;
  state: JobState;
  outcome: JobOutcome | null;
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  log: JobLogInfo;
  /** Final resource use, taken before the cgroup was removed. */
  stats: CgroupStats | null;
}

type JournalEntry = { op: 'put'; record: JobRecord } | { op: 'remove'; id: string };

const MAX_SPARE_LOGS = 64;
/** When fewer spares than this are left, up to SPARES_MADE_AHEAD are made (see StateStoreOptions). */
const SPARES_LOW = 4;
const SPARES_MADE_AHEAD = 16;
/** Bigger logs are deleted: their blocks get freed either way, and one spare block is what is worth keeping. */
const RECYCLE_MAX_BYTES = 1 << 20;
/** A log this small lives in its first block (the smallest ext4/xfs block size). */
const ONE_BLOCK = 1024;
const SPARE_LOG = /^\.spare-(\d+)$/;

/** "<crc32 of the JSON, 8 hex digits> <JSON>\n" */
export function encodeJournalLine(entry: JournalEntry): string {
  const json = JSON.stringify(entry);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** The entry of one line, or undefined if the line is torn or damaged. */
export function decodeJournalLine(line: string): JournalEntry | undefined {
  if (line.length < 10 || line[8] !== ' ') return undefined;
  const json = line.slice(9);
  if (Number.parseInt(line.slice(0, 8), 16) !== crc32(json)) return undefined;
  try {
    const entry = JSON.parse(json) as JournalEntry;
    if (entry.op === 'put' && entry.record?.version === 1 && isJobId(entry.record.id)) return entry;
    if (entry.op === 'remove' && isJobId(entry.id)) return entry;
  } catch {
    // a matching CRC over invalid JSON cannot come from us
  }
  return undefined;
}

export interface StateStoreOptions {
  /**
   * Creates new empty files, in order, stopping at the first failure (the Worker gives the addon's
   * batch, run off the JS thread). With it, spare logs are also made ahead of need, so that a start
   * never waits for a new inode; without it, spares come only from removed jobs.
   */
  createFiles?: (paths: readonly string[]) => Promise<{ completed: number }>;
}

export interface JournalContents {
  records: JobRecord[];
  /** Lines that failed their check (a torn last line after a crash, or damage). */
  damagedLines: number;
  /** Log files that no record owns (a start that crashed before it was recorded). */
  orphanLogs: string[];
}

export class StateStore {
  readonly logsDir: string;
  readonly journalPath: string;
  #journal: FileHandle | null = null;
  /** Journal syncs, one after another. */
  #queue: Promise<void> = Promise.resolve();
  /** A durable append waiting for the next fdatasync, which they share. */
  #syncWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #syncScheduled = false;
  /** Spare log files (removed jobs' logs cut to a header, or made empty ahead) for new jobs to take over. */
  #spares: string[] = [];
  #nextSpare = 0;
  #makingSpares: Promise<void> | null = null;

  constructor(
    readonly stateDir: string,
    private readonly options: StateStoreOptions = {},
  ) {
    this.logsDir = path.join(stateDir, 'logs');
    this.journalPath = path.join(stateDir, 'journal');
  }

  async init(): Promise<void> {
    try {
      // 0700: records hold the jobs' environments, which may carry secrets.
      await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
      await mkdir(this.logsDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw systemError('create state directory', this.stateDir, error);
    }
  }

  logPath(id: string): string {
    return `${this.logsDir}/${id}.log`; // logsDir is normalized (path.join); ids are UUIDs
  }

  /** Reads the journal (the last entry of each job wins) and finds logs no record owns. */
  async readAll(): Promise<JournalContents> {
    let text = '';
    try {
      text = await readFile(this.journalPath, 'utf8');
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw systemError('read journal', this.journalPath, error);
    }
    const records = new Map<string, JobRecord>();
    let damagedLines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const entry = decodeJournalLine(line);
      if (entry === undefined) damagedLines++;
      else if (entry.op === 'put') records.set(entry.record.id, entry.record);
      else records.delete(entry.id);
    }
    const orphanLogs: string[] = [];
    this.#spares = [];
    for (const name of await readdir(this.logsDir)) {
      const spare = SPARE_LOG.exec(name);
      if (spare !== null) {
        this.#nextSpare = Math.max(this.#nextSpare, Number(spare[1]) + 1);
        // A crash between a removal's rename and its truncate leaves old output in a spare: cut it.
        const file = `${this.logsDir}/${name}`;
        if (await truncate(file, FILE_HEADER_SIZE).then(() => true, () => false)) this.#spares.push(file);
        continue;
      }
      const id = name.endsWith('.log') ? name.slice(0, -4) : '';
      if (isJobId(id) && !records.has(id)) orphanLogs.push(id);
    }
    return { records: [...records.values()], damagedLines, orphanLogs };
  }

  /**
   * Replaces the journal with these records only (temp file, fsync, rename, directory fsync), then
   * opens it for appending. Called once at open, after recovery.
   */
  async rewrite(records: readonly JobRecord[]): Promise<void> {
    const temp = `${this.journalPath}.tmp`;
    try {
      const file = await open(temp, 'w', 0o600);
      try {
        await file.writeFile(records.map((record) => encodeJournalLine({ op: 'put', record })).join(''));
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, this.journalPath);
      const dir = await open(this.stateDir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      await this.#journal?.close();
      this.#journal = await open(this.journalPath, 'a', 0o600);
    } catch (error) {
      throw systemError('rewrite journal', this.journalPath, error);
    }
  }

  /** Appends the record; `durable` also waits for it to be on disk (final states). */
  write(record: JobRecord, durable: boolean): Promise<void> {
    return this.#append({ op: 'put', record }, durable);
  }

  /**
   * Forgets a job: its record (a journal entry) and its log. A log of at most `logBytes` (when known)
   * is emptied and kept as a spare for a new job rather than deleted.
   */
  async remove(id: string, logBytes = Number.POSITIVE_INFINITY): Promise<void> {
    await this.#append({ op: 'remove', id }, false);
    const log = this.logPath(id);
    if (logBytes <= RECYCLE_MAX_BYTES && this.#spares.length < MAX_SPARE_LOGS && (await this.#recycle(log, logBytes))) return;
    try {
      await unlink(log);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw systemError('remove log', log, error);
    }
  }

  /** A spare log file for a new job's log to be renamed from, if there is one. */
  takeSpareLog(): string | undefined {
    const spare = this.#spares.pop();
    if (this.#spares.length < SPARES_LOW && this.#makingSpares === null) {
      this.#makingSpares = this.#makeSpares().finally(() => (this.#makingSpares = null));
    }
    return spare;
  }

  /** Makes empty spare logs ahead, in one batch off the JS thread, up to SPARES_MADE_AHEAD. */
  async #makeSpares(): Promise<void> {
    const create = this.options.createFiles;
    if (create === undefined || this.#journal === null) return;
    const paths = Array.from({ length: SPARES_MADE_AHEAD - this.#spares.length }, () => this.#newSpareName());
    try {
      const { completed } = await create(paths);
      this.#spares.unshift(...paths.slice(0, completed)); // used after the recycled ones, which hold a block already
    } catch {
      // Only an optimization: a job then creates its log itself.
    }
  }

  #newSpareName(): string {
    return `${this.logsDir}/.spare-${this.#nextSpare++}`;
  }

  /** Gives back a spare that takeSpareLog() handed out but the spawn did not use. */
  returnSpareLog(spare: string): void {
    this.#spares.push(spare);
  }

  /** Renames the log to a spare and empties it; false if the rename did not work (then delete it). */
  async #recycle(log: string, logBytes: number): Promise<boolean> {
    const spare = this.#newSpareName();
    try {
      renameSync(log, spare); // ~10 µs: gone from its name at once
    } catch {
      return false; // gone already (ENOENT), or the rename failed: unlink() decides
    }
    try {
      // Down to a header's length, not 0: a small log keeps its one block, which the next job
      // overwrites in place (freeing and allocating blocks costs a synchronous discard each on a
      // filesystem mounted -o discard). That is quick enough for this thread; a bigger log's other
      // blocks are freed on the threadpool.
      if (logBytes <= ONE_BLOCK) truncateSync(spare, FILE_HEADER_SIZE);
      else await truncate(spare, FILE_HEADER_SIZE);
      this.#spares.push(spare);
    } catch {
      await rm(spare, { force: true }).catch(() => undefined);
    }
    return true;
  }

  async close(): Promise<void> {
    await this.#makingSpares;
    await this.#queue.catch(() => undefined);
    await this.#journal?.close();
    this.#journal = null;
  }

  #append(entry: JournalEntry, durable: boolean): Promise<void> {
    try {
      this.#appendNow(encodeJournalLine(entry));
    } catch (error) {
      return Promise.reject(error);
    }
    return durable ? this.#sync() : Promise.resolve();
  }

  /**
   * One line, one write(2), on this thread: a page-cache append takes microseconds, less than a trip
   * through the libuv threadpool (whose wake-up alone costs tens of microseconds on a VM). Only
   * fdatasync, which waits for the disk, goes to the pool.
   */
  #appendNow(line: string): void {
    if (this.#journal === null) throw new Error('journal not open');
    const bytes = Buffer.from(line);
    let written: number;
    try {
      written = writeSync(this.#journal.fd, bytes);
    } catch (error) {
      throw systemError('append to journal', this.journalPath, error, errorCode(error) === 'ENOSPC' ? 'resource-exhausted' : 'internal');
    }
    if (written !== bytes.length) {
      // The disk filled mid-line: end the torn line (it fails its CRC at replay) so that the next
      // entry starts a line of its own.
      try {
        writeSync(this.#journal.fd, '\n');
      } catch {
        // still full: replay skips the torn line and whatever was glued to it
      }
      throw systemError('append to journal', this.journalPath, Object.assign(new Error('short write'), { code: 'ENOSPC' }), 'resource-exhausted');
    }
  }

  /** fdatasync, shared by every durable append that arrives while one is pending (group commit). */
  #sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#syncWaiters.push({ resolve, reject });
      if (this.#syncScheduled) return;
      this.#syncScheduled = true;
      // One sync covers every append made before it starts.
      this.#queue = this.#queue.then(async () => {
        const waiters = this.#syncWaiters.splice(0);
        this.#syncScheduled = false;
        try {
          await this.#journal?.datasync();
          for (const w of waiters) w.resolve();
        } catch (error) {
          const failure = systemError('sync journal', this.journalPath, error);
          for (const w of waiters) w.reject(failure);
        }
      });
    });
  }
}
