// The log of a running job as followers see it: its committed size comes straight from the native
// capture (an atomic read), and growth wakes waiting followers through coalesced native events,
// which are only requested while someone waits.
import type { LogSource } from '../logs/follower';
import type { NativeProcess } from '../native';

interface Waiter {
  offset: number;
  resolve: () => void;
}

export class LiveLog implements LogSource {
  #native: NativeProcess | null;
  #size: number;
  #complete = false;
  #waiters = new Set<Waiter>();

  constructor(
    readonly path: string,
    native: NativeProcess,
  ) {
    this.#native = native;
    this.#size = native.logBytes;
  }

  committed(): number {
    if (this.#native !== null) this.#size = Math.max(this.#size, this.#native.logBytes);
    return this.#size;
  }

  isComplete(): boolean {
    return this.#complete;
  }

  /** Capture has ended: this is the final size. Wakes every follower. */
  complete(finalBytes: number): void {
    this.#size = Math.max(this.#size, finalBytes);
    this.#complete = true;
    this.#stopWatching();
    this.#native = null;
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
  }

  waitBeyond(offset: number, signal?: AbortSignal): Promise<void> {
    if (this.#complete || this.committed() > offset) return Promise.resolve();
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        offset,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#waiters.delete(waiter);
        if (this.#waiters.size === 0) this.#stopWatching();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      if (this.#waiters.size === 1) this.#native?.watchOutput((bytes) => this.#grew(bytes));
      // Re-read after asking for events: growth that landed just before is not missed.
      this.#grew(this.committed());
    });
  }

  #grew(bytes: number): void {
    this.#size = Math.max(this.#size, bytes);
    for (const waiter of this.#waiters) {
      if (this.#size > waiter.offset) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
    if (this.#waiters.size === 0) this.#stopWatching();
  }

  #stopWatching(): void {
    this.#native?.watchOutput(null);
  }
}
