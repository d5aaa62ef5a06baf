// Running jobs per owner, for the fd budget's per-identity share: every running job of the owner
// (the Worker's own count, pool jobs this daemon runs included: each holds its fds), plus the
// server's starts of that owner's in flight (checked and counted in one turn, so that concurrent
// starts cannot both slip under the share before the Worker counts them). A start in flight is
// counted twice once the Worker has it, until it settles: the share is then met a moment early,
// never passed.
import type { Worker } from '../worker';

export class OwnerJobCounts {
  #starting = new Map<string, number>();

  constructor(private readonly worker: Worker) {}

  running(owner: string): number {
    return this.worker.quotaUsage(owner).runningJobs + (this.#starting.get(owner) ?? 0);
  }

  /** Counts a start of `owner`'s in flight; call the returned function once it has settled, either way. */
  starting(owner: string): () => void {
    this.#starting.set(owner, (this.#starting.get(owner) ?? 0) + 1);
    let settled = false;
    return () => {
      if (settled) return;
      settled = true;
      const left = (this.#starting.get(owner) ?? 1) - 1;
      if (left <= 0) this.#starting.delete(owner);
      else this.#starting.set(owner, left);
    };
  }

  close(): void {}
}
