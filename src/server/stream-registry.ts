// The server's open streams. Every server stream (StreamLogs, WatchJobs, health Watch, reflection)
// is admitted by the authentication interceptor (./peer-identity.ts) and counted here against its
// identity, which may hold at most `maxPerIdentity` at once, and by method (the fd budget counts
// the StreamLogs ones, which hold their log file open). A StreamLogs or WatchJobs stream can cost up
// to ~3 MiB when its client stops reading (the client's HTTP/2 window plus what is in flight,
// docs/api.md), so the limit bounds what one identity can make the daemon hold. Our own handlers
// also register their abort while they run, so shutdown can end them.
import { JobworkerError } from '../errors';

export class StreamRegistry {
  readonly maxPerIdentity: number;
  #open = new Set<AbortController>();
  #perIdentity = new Map<string, number>();
  #perMethod = new Map<string, number>();
  /** Per identity and method: "identity\nmethod". */
  #perIdentityMethod = new Map<string, number>();

  constructor(maxPerIdentity: number) {
    this.maxPerIdentity = maxPerIdentity;
  }

  /** Registers a stream until the returned release is called; abortAll() aborts it meanwhile. */
  track(abort: AbortController): () => void {
    this.#open.add(abort);
    return () => this.#open.delete(abort);
  }

  /**
   * Counts one more stream of `method` for `identity` until the returned release is called (once;
   * later calls do nothing); RESOURCE_EXHAUSTED if the identity already holds the most it may.
   */
  admit(identity: string, method: string): () => void {
    const open = this.#perIdentity.get(identity) ?? 0;
    if (open >= this.maxPerIdentity) {
      throw new JobworkerError('resource-exhausted', `${identity} has ${open} streams open, the limit is ${this.maxPerIdentity}`);
    }
    this.#perIdentity.set(identity, open + 1);
    this.#perMethod.set(method, (this.#perMethod.get(method) ?? 0) + 1);
    const both = `${identity}\n${method}`;
    this.#perIdentityMethod.set(both, (this.#perIdentityMethod.get(both) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      decrement(this.#perIdentity, identity);
      decrement(this.#perMethod, method);
      decrement(this.#perIdentityMethod, both);
    };
  }

  /** Open streams of `method` ("/jobworker.v1.JobService/StreamLogs"). */
  openOf(method: string): number {
    return this.#perMethod.get(method) ?? 0;
  }

  /** Open streams of `method` that `identity` holds. */
  openByOf(identity: string, method: string): number {
    return this.#perIdentityMethod.get(`${identity}\n${method}`) ?? 0;
  }

  /** Open streams of `identity`. */
  openBy(identity: string): number {
    return this.#perIdentity.get(identity) ?? 0;
  }

  /** Ends every registered stream (shutdown). */
  abortAll(reason: Error): void {
    for (const abort of this.#open) abort.abort(reason);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left === 0) counts.delete(key);
  else counts.set(key, left);
}
