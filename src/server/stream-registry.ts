// The server's open streams (StreamLogs, WatchJobs): each is registered while it runs so shutdown can
// end it, and counted against its identity, which may hold at most `maxPerIdentity` at once. Each
// can cost up to ~2 MiB when its client stops reading (the client's HTTP/2 window plus what is in
// flight), so the limit bounds what one identity can make the daemon hold.
import { JobworkerError } from '../errors';

export class StreamRegistry {
  readonly maxPerIdentity: number;
  #open = new Set<AbortController>();
  #perIdentity = new Map<string, number>();

  constructor(maxPerIdentity: number) {
    this.maxPerIdentity = maxPerIdentity;
  }

  /** Registers a stream until the returned release is called; abortAll() aborts it meanwhile. */
  track(abort: AbortController): () => void {
    this.#open.add(abort);
    return () => this.#open.delete(abort);
  }

  /**
   * Counts one more stream for `identity` until the returned release is called; RESOURCE_EXHAUSTED
   * if it already holds the most it may.
   */
  admit(identity: string): () => void {
    const open = this.#perIdentity.get(identity) ?? 0;
    if (open >= this.maxPerIdentity) {
      throw new JobworkerError('resource-exhausted', `${identity} has ${open} streams open, the limit is ${this.maxPerIdentity}`);
    }
    this.#perIdentity.set(identity, open + 1);
    return () => {
      const left = (this.#perIdentity.get(identity) ?? 1) - 1;
      if (left === 0) this.#perIdentity.delete(identity);
      else this.#perIdentity.set(identity, left);
    };
  }

  /** Ends every registered stream (shutdown). */
  abortAll(reason: Error): void {
    for (const abort of this.#open) abort.abort(reason);
  }
}
