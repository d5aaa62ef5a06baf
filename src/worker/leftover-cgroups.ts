// Job cgroups that still held processes when their job finished: a process in uninterruptible
// sleep (a hung NFS read, a device) outlives cgroup.kill until the kernel lets it go. The job is
// finished all the same; its cgroup, and whatever else may not be handed on while something of the
// job runs (its dynamic uid), are kept here and tried again in the background, less and less often,
// until the processes are gone: then the cgroup is removed and `release` gives the rest back.
// Before, they stayed out of use until the worker was reopened.
import type { JobCgroup } from '../cgroup';

export interface LeftoverCgroupsOptions {
  /** The worker's warnings (also the end of a leftover: the operator saw it begin). */
  warn(message: string, details: Record<string, unknown>): void;
  /** The first retry comes after this long; each later one after twice the last, up to maxRetryMs. */
  firstRetryMs?: number;
  maxRetryMs?: number;
}

interface Leftover {
  cgroup: JobCgroup;
  release: () => Promise<void>;
  nextMs: number;
  attempts: number;
  timer: NodeJS.Timeout | null;
}

export class LeftoverCgroups {
  #entries = new Map<string, Leftover>();
  #options: Required<LeftoverCgroupsOptions>;
  #closed = false;

  constructor(options: LeftoverCgroupsOptions) {
    this.#options = { firstRetryMs: 5_000, maxRetryMs: 300_000, ...options };
  }

  /** Job ids whose cgroup is still waiting for its processes to go. */
  get jobIds(): string[] {
    return [...this.#entries.keys()];
  }

  /** Takes a finished job's cgroup that could not be removed; `release` runs once it is. */
  adopt(jobId: string, cgroup: JobCgroup, release: () => Promise<void>): void {
    if (this.#closed || this.#entries.has(jobId)) return;
    const entry: Leftover = { cgroup, release, nextMs: this.#options.firstRetryMs, attempts: 0, timer: null };
    this.#entries.set(jobId, entry);
    this.#schedule(jobId, entry);
  }

  /** Stops retrying (the worker is closing: its next open sweeps what is left, as after a crash). */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) if (entry.timer !== null) clearTimeout(entry.timer);
    this.#entries.clear();
  }

  #schedule(jobId: string, entry: Leftover): void {
    // unref: a worker that is otherwise idle does not stay up for these.
    entry.timer = setTimeout(() => void this.#retry(jobId, entry), entry.nextMs).unref();
    entry.nextMs = Math.min(entry.nextMs * 2, this.#options.maxRetryMs);
  }

  async #retry(jobId: string, entry: Leftover): Promise<void> {
    entry.timer = null;
    entry.attempts++;
    try {
      await entry.cgroup.destroy(); // kills what is left again, waits for it, removes the directories
    } catch (error) {
      if (this.#closed) return;
      if (entry.attempts === 1 || Number.isInteger(Math.log2(entry.attempts))) {
        this.#options.warn('processes of a finished job are still there; trying again later', { job: jobId, cgroup: entry.cgroup.path, attempts: entry.attempts, error: String(error) });
      }
      this.#schedule(jobId, entry);
      return;
    }
    if (this.#closed) return; // the worker is closing: its next open sweeps the rest
    this.#entries.delete(jobId);
    this.#options.warn('the processes a finished job left are gone: its cgroup is removed, what it held released', { job: jobId, attempts: entry.attempts });
    await entry.release().catch((error: unknown) => this.#options.warn('could not release what a finished job held', { job: jobId, error: String(error) }));
  }
}
