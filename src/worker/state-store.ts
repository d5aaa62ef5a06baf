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
// A removed job's log becomes a spare for a new job (./spare-logs.ts).
//
// Atomicity: each entry is one line, written with one write(2) to a file opened O_APPEND, and carries
// a CRC-32 of its JSON; a line cut short by a crash, or damaged, fails its check and is skipped, so
// a crash leaves each record either as it was or as it became, never half. Durable entries (a job's
// final state) are followed by fdatasync before anyone is told; concurrent ones share one
// (group commit). At open, after recovery, the journal is rewritten with the live records only
// (temp file, fsync, rename, directory fsync), so it does not grow without bound.
import { writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';

import type { CgroupStats } from '../cgroup';
import { errorCode, systemError } from '../errors';
import { isJobId } from '../job-id';
import type { JobIsolation } from './isolation';
import type { JobRunAs, ResolvedJobSpec } from './job-spec';
import type { JobOutcome, JobState } from './job-state';
import { SpareLogs, type CreateFiles } from './spare-logs';

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
  /** Who it runs as (absent in records written before jobs had their own users: the daemon's, root). */
  runAs?: JobRunAs;
  /** Its isolation (absent in older records: none, the host's namespaces). */
  isolation?: JobIsolation;
  /** Its scratch directory, null if it was given a working directory. */
  scratchDir?: string | null;
}

type JournalEntry = { op: 'put'; record: JobRecord } | { op: 'remove'; id: string };


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
  createFiles?: CreateFiles;
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
  /** Logs of removed jobs (and empty ones made ahead) for new jobs to take over. */
  readonly spareLogs: SpareLogs;

  constructor(
    readonly stateDir: string,
    options: StateStoreOptions = {},
  ) {
    this.logsDir = path.join(stateDir, 'logs');
    this.journalPath = path.join(stateDir, 'journal');
    this.spareLogs = new SpareLogs(this.logsDir, options.createFiles);
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
    await this.spareLogs.adoptExisting();
    for (const name of await readdir(this.logsDir)) {
      if (SpareLogs.isSpareName(name)) continue;
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
    await this.spareLogs.discard(this.logPath(id), logBytes);
  }

  async close(): Promise<void> {
    await this.spareLogs.close();
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
