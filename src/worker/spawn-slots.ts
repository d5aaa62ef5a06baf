// How many of an identity's spawns may be in flight at once. A spawn holds a libuv threadpool thread
// (shared with every file system call of the daemon) until its child has exec'd, and a job's start
// can be made slow (a long PATH search, a slow file system; at worst the 10 s deadline): one
// identity starting many such jobs at once could hold all four threads and stall everyone's
// StartJob, StopJob and StreamLogs. Past its share an identity's starts wait their turn, in order.
export const SPAWNS_PER_IDENTITY = 2;

export class SpawnSlots {
  #inFlight = new Map<string, number>();
  #waiting = new Map<string, (() => void)[]>();

  constructor(private readonly perIdentity = SPAWNS_PER_IDENTITY) {}

  /** Resolves with the release once `identity` may spawn; call the release once the spawn is over. */
  async acquire(identity: string): Promise<() => void> {
    const busy = this.#inFlight.get(identity) ?? 0;
    if (busy < this.perIdentity) {
      this.#inFlight.set(identity, busy + 1);
    } else {
      // The slot is handed over by release() (the count stays), so no later caller can jump the queue.
      await new Promise<void>((resolve) => {
        const queue = this.#waiting.get(identity) ?? [];
        queue.push(resolve);
        this.#waiting.set(identity, queue);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#release(identity);
    };
  }

  #release(identity: string): void {
    const queue = this.#waiting.get(identity);
    const next = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.#waiting.delete(identity);
    if (next !== undefined) {
      next();
      return;
    }
    const busy = (this.#inFlight.get(identity) ?? 1) - 1;
    if (busy === 0) this.#inFlight.delete(identity);
    else this.#inFlight.set(identity, busy);
  }
}
