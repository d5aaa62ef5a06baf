// Bounds the StreamLogs requests that scan a log to find where to start (`tail_lines`,
// `since_unix_micros`): how many run at once in all, and per identity. A scan walks the record
// headers with reads on libuv's threadpool (4 threads, shared with every spawn and file operation
// of the daemon), so 20 at once pushed everyone's StartJob from milliseconds to hundreds of
// milliseconds. Requests beyond the bounds wait their turn, holding nothing but their stream slot:
// identities take turns (each one's own requests in order), so one identity's long queue does not
// hold the others back; a waiter whose client goes away leaves the queue.
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
  /** Each waiting identity's requests, oldest first; the identity whose turn is next first. */
  #queues = new Map<string, Waiter[]>();
  #waitingCount = 0;

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
    return this.#waitingCount;
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
        const queue = this.#queues.get(identity) ?? [];
        const at = queue.indexOf(waiter);
        if (at >= 0) {
          queue.splice(at, 1);
          this.#waitingCount--;
          if (queue.length === 0) this.#queues.delete(identity);
        }
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const queue = this.#queues.get(identity);
      if (queue === undefined) this.#queues.set(identity, [waiter]);
      else queue.push(waiter);
      this.#waitingCount++;
      this.#admitWaiting();
    });
  }

  #fits(identity: string): boolean {
    return this.#running < this.max && (this.#perIdentity.get(identity) ?? 0) < this.maxPerIdentity;
  }

  /**
   * Starts waiters while there is room: identities in turn, the oldest request of each. An identity
   * admitted goes to the back of the turns (one identity's long queue does not block the others).
   */
  #admitWaiting(): void {
    let admitted = true;
    while (admitted && this.#running < this.max) {
      admitted = false;
      for (const [identity, queue] of this.#queues) {
        if (!this.#fits(identity)) continue;
        const waiter = queue.shift()!;
        this.#waitingCount--;
        this.#queues.delete(identity);
        if (queue.length > 0) this.#queues.set(identity, queue); // to the back of the turns
        this.#running++;
        this.#perIdentity.set(identity, (this.#perIdentity.get(identity) ?? 0) + 1);
        waiter.admit();
        admitted = true;
        break; // the turns changed: look again from the front
      }
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
