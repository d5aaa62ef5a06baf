// Spare log files: a removed job's log (up to 1 MiB) is not deleted but renamed to logs/.spare-<n>
// and cut back to its header (its output is gone at once), and a new job's log is a spare renamed
// (the addon does it, off the JS thread) and overwritten in place. Allocating a new inode is the
// slow part of creating a file on ext4 without a journal (`find_inode_bit` skips every inode freed
// in the last minutes, one by one: ~0.1-0.25 ms per file here once files churn), and freeing a block
// is a synchronous discard with -o discard; a rename takes ~10 µs. At most MAX_SPARE_LOGS are kept.
// When few are left, new empty ones are made ahead, in one batch on the threadpool, so that a start
// does not wait for an inode either. A spare is only ever cut through a descriptor opened without
// following links, and only if it is a plain file of ours (./state-files.ts): anything else found
// under a spare's name is unlinked, never written through.
import { renameSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

import { errorCode, systemError } from '../errors';
import { FILE_HEADER_SIZE } from '../logs/format';
import { removeIfPresent, truncateOwnFile, truncateOwnFileSync } from './state-files';

const MAX_SPARE_LOGS = 64;
/** When fewer spares than this are left, up to SPARES_MADE_AHEAD are made. */
const SPARES_LOW = 4;
const SPARES_MADE_AHEAD = 16;
/** Bigger logs are deleted: their blocks get freed either way, and one spare block is what is worth keeping. */
const RECYCLE_MAX_BYTES = 1 << 20;
/** A log this small lives in its first block (the smallest ext4/xfs block size). */
const ONE_BLOCK = 1024;
const SPARE_LOG = /^\.spare-(\d+)$/;

/** Creates new empty files, in order, stopping at the first failure (the addon's batch, off the JS thread). */
export type CreateFiles = (paths: readonly string[]) => Promise<{ completed: number }>;

export class SpareLogs {
  #spares: string[] = [];
  #nextSpare = 0;
  #makingSpares: Promise<void> | null = null;
  #closed = false;

  constructor(
    readonly logsDir: string,
    private readonly createFiles: CreateFiles | undefined,
  ) {}

  /** Whether a file name in the logs directory is a spare's. */
  static isSpareName(name: string): boolean {
    return SPARE_LOG.test(name);
  }

  /**
   * Takes in the spares found in the logs directory at open, each cut to a header. Returns the
   * names that were not plain files of ours (links, hard links): unlinked, their targets untouched.
   */
  async adoptExisting(): Promise<string[]> {
    this.#spares = [];
    const refused: string[] = [];
    for (const name of await readdir(this.logsDir)) {
      const spare = SPARE_LOG.exec(name);
      if (spare === null) continue;
      this.#nextSpare = Math.max(this.#nextSpare, Number(spare[1]) + 1);
      // A crash between a removal's rename and its truncate leaves old output in a spare: cut it.
      const file = `${this.logsDir}/${name}`;
      const cut = await truncateOwnFile(file, FILE_HEADER_SIZE).catch(() => null);
      if (cut === true) {
        this.#spares.push(file);
      } else {
        if (cut === false) refused.push(file);
        await removeIfPresent(file, 'remove spare log').catch(() => undefined);
      }
    }
    return refused;
  }

  /** A spare log file for a new job's log to be renamed from, if there is one. */
  take(): string | undefined {
    const spare = this.#spares.pop();
    if (this.#spares.length < SPARES_LOW && this.#makingSpares === null) {
      this.#makingSpares = this.#makeAhead().finally(() => (this.#makingSpares = null));
    }
    return spare;
  }

  /** Gives back a spare that take() handed out but the spawn did not use. */
  giveBack(spare: string): void {
    this.#spares.push(spare);
  }

  /**
   * Renames a log out of its job's name (~10 µs, on this thread): from now on the job has no log.
   * Returns the new name, or null if there was no log. Throws (a SystemError naming the log) if the
   * rename fails: a read-only state directory answers `unavailable` and nothing has changed.
   */
  setAside(log: string): string | null {
    const spare = this.#newSpareName();
    try {
      renameSync(log, spare);
      return spare;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw systemError('remove log', log, error);
    }
  }

  /** Puts back a log set aside by setAside() (the removal it was for did not happen). */
  restore(spare: string, log: string): void {
    renameSync(spare, log);
  }

  /**
   * Disposes of a log set aside: kept as a spare (emptied) when it is small and there is room,
   * deleted otherwise. `logBytes` is its size when known.
   */
  async dispose(spare: string, logBytes = Number.POSITIVE_INFINITY): Promise<void> {
    if (logBytes <= RECYCLE_MAX_BYTES && this.#spares.length < MAX_SPARE_LOGS) {
      try {
        // Down to a header's length, not 0: a small log keeps its one block, which the next job
        // overwrites in place (freeing and allocating blocks costs a synchronous discard each on a
        // filesystem mounted -o discard). That is quick enough for this thread; a bigger log's other
        // blocks are freed on the threadpool.
        const cut = logBytes <= ONE_BLOCK ? truncateOwnFileSync(spare, FILE_HEADER_SIZE) : await truncateOwnFile(spare, FILE_HEADER_SIZE);
        if (cut) {
          this.#spares.push(spare);
          return;
        }
      } catch {
        // not kept: deleted below
      }
    }
    await removeIfPresent(spare, 'remove log');
  }

  /** Removes a log that no job owns any more: setAside(), then dispose(). */
  async discard(log: string, logBytes = Number.POSITIVE_INFINITY): Promise<void> {
    const spare = this.setAside(log);
    if (spare !== null) await this.dispose(spare, logBytes);
  }

  /** Waits for spares being made; none are made afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#makingSpares;
  }

  /** Makes empty spare logs ahead, in one batch off the JS thread, up to SPARES_MADE_AHEAD. */
  async #makeAhead(): Promise<void> {
    if (this.createFiles === undefined || this.#closed) return;
    const paths = Array.from({ length: SPARES_MADE_AHEAD - this.#spares.length }, () => this.#newSpareName());
    try {
      const { completed } = await this.createFiles(paths);
      this.#spares.unshift(...paths.slice(0, completed)); // used after the recycled ones, which hold a block already
    } catch {
      // Only an optimization: a job then creates its log itself.
    }
  }

  #newSpareName(): string {
    return `${this.logsDir}/.spare-${this.#nextSpare++}`;
  }
}
