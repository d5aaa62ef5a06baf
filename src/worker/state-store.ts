// The state directory:
//
//   <stateDir>/journal              job records, one checked line per change, appended (./journal.ts)
//   <stateDir>/journal.damaged-<t>  lines that failed their check at an open, copied aside
//   <stateDir>/logs/<id>.log        each job's output (docs/log-format.md)
//   <stateDir>/logs/<id>.spec       a big job spec, written once (./spec-file.ts)
//   <stateDir>/logs/.spare-<n>      logs of removed jobs, emptied, for new jobs (./spare-logs.ts)
//
// Why a journal and not a job.json per job: on ext4, allocating an inode near recently deleted ones
// is slow (the allocator skips them one by one: `recently_deleted`), and a file per record and per
// update (temp + rename) made the state directory cost as much as the rest of a job put together
// (measured: 614 vs 1,220 start+finish per second without cgroups). Now a job creates one file, its
// log (two when its spec is big); its records are appended to one file.
//
// The directory is trusted only if no one else can write it (./state-dir.ts), and no file in it is
// opened through a link (./state-files.ts).
import * as path from 'node:path';
import { readdir } from 'node:fs/promises';

import { isJobId } from '../job-id';
import { DEFAULT_COMPACTION, Journal, type CompactionPolicy, type JournalStats } from './journal';
import { readJournal, type JournalContents } from './journal-reader';
import type { JobRecord } from './job-record';
import type { ResolvedJobSpec } from './job-spec';
import { readSpecFile, writeSpecFile } from './spec-file';
import { SpareLogs, type CreateFiles } from './spare-logs';
import { prepareStateDir } from './state-dir';
import { removeIfPresent, syncDirectory, syncFiles } from './state-files';

export type { JobLogInfo, JobRecord } from './job-record';

export interface StateStoreOptions {
  /**
   * Creates new empty files, in order, stopping at the first failure (the Worker gives the addon's
   * batch, run off the JS thread). With it, spare logs are also made ahead of need, so that a start
   * never waits for a new inode; without it, spares come only from removed jobs.
   */
  createFiles?: CreateFiles;
  /** When the journal is compacted while running (default DEFAULT_COMPACTION). */
  compaction?: CompactionPolicy;
  /** Problems that must not fail anything but should be seen (a compaction that failed). */
  warn?: (message: string, details: Record<string, unknown>) => void;
}

export type LogEntryKind = 'file' | 'link' | 'other';

/** What open() finds in the state directory. */
export interface StateContents {
  journal: JournalContents;
  /** Jobs with something under their log's name: a file, or a link (never ours: never followed). */
  logs: Map<string, LogEntryKind>;
  /** Jobs with a spec file. */
  specFiles: Set<string>;
  /** Spares that were not plain files of ours (links): unlinked, their targets untouched. */
  refusedSpares: string[];
}

const LOG_SUFFIX = '.log';
/** Spec files moved out of format 1 records are fdatasync'd this many at a time. */
const MIGRATION_SYNCS = 16;
const SPEC_SUFFIX = '.spec';

export class StateStore {
  readonly stateDir: string;
  readonly logsDir: string;
  readonly journalPath: string;
  /** Logs of removed jobs (and empty ones made ahead) for new jobs to take over. */
  readonly spareLogs: SpareLogs;
  #journal: Journal | null = null;
  #options: StateStoreOptions;

  constructor(stateDir: string, options: StateStoreOptions = {}) {
    this.stateDir = path.resolve(stateDir);
    this.logsDir = path.join(this.stateDir, 'logs');
    this.journalPath = path.join(this.stateDir, 'journal');
    this.spareLogs = new SpareLogs(this.logsDir, options.createFiles);
    this.#options = options;
  }

  /** Creates the state directory (0700) or checks that an existing one can be trusted. */
  async init(): Promise<void> {
    await prepareStateDir(this.stateDir, path.basename(this.logsDir));
  }

  logPath(id: string): string {
    return `${this.logsDir}/${id}${LOG_SUFFIX}`; // logsDir is normalized (path.join); ids are UUIDs
  }

  specPath(id: string): string {
    return `${this.logsDir}/${id}${SPEC_SUFFIX}`;
  }

  /**
   * Reads the journal as a stream (the last entry of each job wins; damaged lines copied aside;
   * version 1 records' big specs written to spec files), takes the spares in, and lists the logs
   * and spec files. Changes nothing else: recovery decides.
   */
  async readAll(): Promise<StateContents> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const migratedSpecs: string[] = [];
    const journal = await readJournal(this.journalPath, {
      damagedCopyPath: `${this.journalPath}.damaged-${stamp}`,
      saveLegacySpec: async (id, spec) => {
        await writeSpecFile(this.specPath(id), id, spec, { replace: true, sync: false });
        migratedSpecs.push(this.specPath(id));
      },
    });
    if (migratedSpecs.length > 0) {
      // On disk before the journal is rewritten without them: synced together, not one by one.
      await syncFiles(migratedSpecs, MIGRATION_SYNCS, 'sync migrated job spec file');
      await syncDirectory(this.logsDir);
    }
    const refusedSpares = await this.spareLogs.adoptExisting();
    const logs = new Map<string, LogEntryKind>();
    const specFiles = new Set<string>();
    for (const entry of await readdir(this.logsDir, { withFileTypes: true })) {
      const name = entry.name;
      const suffix = name.endsWith(LOG_SUFFIX) ? LOG_SUFFIX : name.endsWith(SPEC_SUFFIX) ? SPEC_SUFFIX : null;
      const id = suffix === null ? '' : name.slice(0, -suffix.length);
      if (!isJobId(id)) continue;
      if (suffix === SPEC_SUFFIX) specFiles.add(id);
      else logs.set(id, entry.isFile() ? 'file' : entry.isSymbolicLink() ? 'link' : 'other');
    }
    return { journal, logs, specFiles, refusedSpares };
  }

  /**
   * Writes a fresh journal holding these records only and opens it for appending (at open, after
   * recovery). The records are the live objects the jobs change.
   */
  async open(records: Iterable<JobRecord>): Promise<void> {
    await this.#journal?.close();
    this.#journal = await Journal.create(this.journalPath, records, this.#options.compaction ?? DEFAULT_COMPACTION, this.#options.warn ?? (() => undefined));
  }

  /** Appends the record; `durable` also waits for it to be on disk (final states). */
  write(record: JobRecord, durable: boolean): Promise<void> {
    return this.#opened().put(record, durable);
  }

  /** Writes a job's whole spec to its spec file (before its first record). */
  writeSpec(id: string, spec: ResolvedJobSpec): Promise<void> {
    return writeSpecFile(this.specPath(id), id, spec);
  }

  /** A job's whole spec from its spec file; undefined if missing or damaged. */
  readSpec(id: string): Promise<ResolvedJobSpec | undefined> {
    return readSpecFile(this.specPath(id), id);
  }

  /**
   * Forgets a job: its record (a journal entry), its log and its spec file. The log is renamed out
   * of the way first, so a read-only state directory refuses (`unavailable`) before anything has
   * changed; if the journal then refuses the entry (full, read-only), the log is put back. A log of
   * at most `logBytes` (when known) is emptied and kept as a spare for a new job.
   */
  async remove(id: string, options: { logBytes?: number; specFile?: boolean } = {}): Promise<void> {
    const log = this.logPath(id);
    const setAside = this.spareLogs.setAside(log);
    try {
      this.#opened().remove(id);
    } catch (error) {
      if (setAside !== null) this.spareLogs.restore(setAside, log);
      throw error;
    }
    if (setAside !== null) await this.spareLogs.dispose(setAside, options.logBytes);
    if (options.specFile) await removeIfPresent(this.specPath(id), 'remove job spec file');
  }

  /** Sizes of the journal (for tests and metrics). */
  journalStats(): JournalStats {
    return this.#opened().stats();
  }

  /** Resolves when a compaction under way is over. */
  async compacted(): Promise<void> {
    await this.#journal?.compacted();
  }

  async close(): Promise<void> {
    await this.spareLogs.close();
    await this.#journal?.close();
    this.#journal = null;
  }

  #opened(): Journal {
    if (this.#journal === null) throw new Error('journal not open');
    return this.#journal;
  }
}
