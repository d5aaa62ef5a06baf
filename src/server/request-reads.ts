// Requests being received, per identity. grpc-js reads a call's request as soon as its handler asks
// (right after the authentication interceptor let the call through) and keeps the bytes of a
// message it has not wholly received — up to the 2 MiB message cap, then as much again to
// decompress it — for as long as the client takes to send the rest. A client that declares a 2 MiB
// message and never sends its last byte made the daemon hold 2 MiB per call, on every stream of
// every connection: one reader with 4 connections of 256 such calls held 2.4 GiB, indefinitely.
//
// So each identity may have at most `maxPerIdentity` calls reading a request at once. The others
// wait (the interceptor holds back grpc-js's startRead) with their HTTP/2 stream paused: Node then
// stops consuming the stream's DATA, so HTTP/2 flow control stops the client at the stream's
// window (64 KiB). A unary request keeps its slot until the end of the request arrives (a second
// message is read under the same bound); a request stream (reflection) gives it back after each
// message; the call's end releases it. Waiting calls get slots in the order they asked. A call with
// a request stream asks for its next message at once, and so holds a slot while it waits for the
// client to send one, idle: those calls have slots of their own (a second RequestReads, in
// ./server.ts), or a few idle reflection streams would hold up every other call of their identity.
export const DEFAULT_MAX_REQUEST_READS_PER_IDENTITY = 32;

export interface ReadSlot {
  /** Gives the slot back, or leaves the queue if still waiting; once (later calls do nothing). */
  release(): void;
}

export class RequestReads {
  readonly maxPerIdentity: number;
  #reading = new Map<string, number>();
  #waiting = new Map<string, Set<() => void>>();

  constructor(maxPerIdentity: number = DEFAULT_MAX_REQUEST_READS_PER_IDENTITY) {
    this.maxPerIdentity = maxPerIdentity;
  }

  /**
   * Calls `granted` with the slot once `identity` has a free one: at once (before this returns) if
   * it has one now; the slot is returned either way, to release it or to stop waiting.
   */
  acquire(identity: string, granted: (slot: ReadSlot) => void): ReadSlot {
    let state: 'waiting' | 'held' | 'done' = 'waiting';
    const grant = () => {
      state = 'held';
      this.#reading.set(identity, (this.#reading.get(identity) ?? 0) + 1);
      granted(slot);
    };
    const slot: ReadSlot = {
      release: () => {
        if (state === 'waiting') {
          const queue = this.#waiting.get(identity);
          queue?.delete(grant);
          if (queue?.size === 0) this.#waiting.delete(identity);
        } else if (state === 'held') {
          const left = (this.#reading.get(identity) ?? 1) - 1;
          if (left === 0) this.#reading.delete(identity);
          else this.#reading.set(identity, left);
          state = 'done';
          this.#next(identity);
        }
        state = 'done';
      },
    };
    if ((this.#reading.get(identity) ?? 0) < this.maxPerIdentity) grant();
    else {
      const queue = this.#waiting.get(identity) ?? new Set();
      queue.add(grant);
      this.#waiting.set(identity, queue);
    }
    return slot;
  }


  #next(identity: string): void {
    const queue = this.#waiting.get(identity);
    if (queue === undefined || (this.#reading.get(identity) ?? 0) >= this.maxPerIdentity) return;
    const [grant] = queue;
    queue.delete(grant!);
    if (queue.size === 0) this.#waiting.delete(identity);
    grant!();
  }
}
