// Bounds the StreamLogs requests that scan a log to find where to start (`tail_lines`,
// `since_unix_micros`): how many run at once in all, and per identity. A scan walks the record
// headers with reads on libuv's threadpool (4 threads, shared with every spawn and file operation
// of the daemon), so 20 at once pushed everyone's StartJob from milliseconds to hundreds of
// milliseconds. Requests beyond the bounds wait their turn (in order), holding nothing but their
// stream slot; a waiter whose client goes away leaves the queue.
import { JobworkerError } from '../errors';

export const DEFAULT_MAX_SCANS = 1;
export const DEFAULT_MAX_SCANS_PER_IDENTITY = 1;

interface Waiter {
  identity: string;
  admit: () => void;
}

export class ScanLimiter {
  readonly max: number;
  readonly maxPerIdentity: number;
  #running = 0;
  #perIdentity = new Map<string, number>();
  #waiting: Waiter[] = [];

  constructor(max = DEFAULT_MAX_SCANS, maxPerIdentity = DEFAULT_MAX_SCANS_PER_IDENTITY) {
    if (!(max >= 1 && maxPerIdentity >= 1)) throw new JobworkerError('invalid-argument', `scan limits must be at least 1 (got ${max}, ${maxPerIdentity} per identity)`);
    this.max = max;
    this.maxPerIdentity = maxPerIdentity;
  }

  /** Scans running now. */
  get running(): number {
    return this.#running;
  }

  /** Scans waiting for a turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with the release once `identity` may scan; rejects with `signal`'s reason if it
   * aborts first. The release must be called once the scan is over.
   */
  acquire(identity: string, signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        identity,
        admit: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.#release(identity));
        },
      };
      const onAbort = () => {
        this.#waiting = this.#waiting.filter((w) => w !== waiter);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
      this.#admitWaiting();
    });
  }

  #fits(identity: string): boolean {
    return this.#running < this.max && (this.#perIdentity.get(identity) ?? 0) < this.maxPerIdentity;
  }

  /** Starts every waiter that fits, oldest first (one identity's queue does not block others). */
  #admitWaiting(): void {
    for (let i = 0; i < this.#waiting.length && this.#running < this.max; ) {
      const waiter = this.#waiting[i]!;
      if (!this.#fits(waiter.identity)) {
        i++;
        continue;
      }
      this.#waiting.splice(i, 1);
      this.#running++;
      this.#perIdentity.set(waiter.identity, (this.#perIdentity.get(waiter.identity) ?? 0) + 1);
      waiter.admit();
    }
  }

  #release(identity: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
      const left = (this.#perIdentity.get(identity) ?? 1) - 1;
      if (left === 0) this.#perIdentity.delete(identity);
      else this.#perIdentity.set(identity, left);
      this.#admitWaiting();
    };
  }
}
