// StreamLogs messages shared by the followers of one job. Each follower used to read every record
// of the log and encode it into a message of its own: 100 followers of a job cost the daemon 100
// reads and 100 copies of every byte. Followers that ask for the same streams and stand at the same
// place in the log build the same message (./log-stream.ts cuts messages at fixed places, so they
// line up again after any difference), so the first to get there offers it here and the others
// send those very bytes. The memory is bounded: per job and in all, the newest messages are kept;
// a follower that finds nothing reads for itself, as before.

/** A message of the log, encoded: the records after position `start` up to position `end`. */
export interface SharedMessage {
  /** The encoded message, with room for gRPC's prefix in front (framed in place when sent). */
  readonly bytes: Buffer;
  /** Where the next message starts: the `next_offset` of its last chunk. */
  readonly end: number;
  /** Call once the message has been sent (or the send has failed): its buffer may then be reused. */
  sent(): void;
}

interface Entry {
  readonly key: string;
  readonly bytes: Buffer;
  /** The memory it holds: the whole buffer the message was encoded into, not only its bytes. */
  readonly size: number;
  readonly end: number;
  /** Gives the buffer back to the follower that encoded it, once nothing holds it any more. */
  readonly release: () => void;
  /** Sends of it handed to grpc-js and not yet done. */
  sending: number;
  cached: boolean;
}

interface JobMessages {
  streams: number;
  /** Oldest first (a Map keeps insertion order): evicted from the front. */
  entries: Map<string, Entry>;
  bytes: number;
}

export interface SharedLogMessagesLimits {
  /** Bytes of messages kept per job (default 32 MiB: 128 messages of 256 KiB). */
  perJobBytes?: number;
  /** Bytes of messages kept in all (default 64 MiB). */
  totalBytes?: number;
}

// Followers on connections of their own drift apart: 100 of them, one connection each, spread over
// more than 16 MiB of a fast job's log here. Fewer bytes kept than that spread and the ones behind find
// nothing, read and encode for themselves and push out what the next ones need (at 8 MiB: half the
// throughput, twice the daemon's CPU per byte; docs/benchmarks.md, the seventh stop of issue 17).
export const DEFAULT_SHARED_BYTES_PER_JOB = 32 << 20;
export const DEFAULT_SHARED_BYTES_TOTAL = 64 << 20;

/** The handle one stream uses: it looks messages up and offers the ones it encodes. */
export interface LogMessageShare {
  /** The message that starts at `start`, if another follower has offered it and it is still kept. */
  lookup(start: number): SharedMessage | undefined;
  /**
   * Offers a message this stream has just encoded; returns what to call once its own send is done.
   * Kept only while the job has other followers that may use it, and within the limits, which count
   * the whole buffer `bytes` is a view into.
   */
  offer(start: number, end: number, bytes: Buffer, release: () => void): () => void;
  /** The stream has ended. */
  leave(): void;
}

export class SharedLogMessages {
  readonly #byJob = new Map<object, JobMessages>();
  readonly #perJobBytes: number;
  readonly #totalBytes: number;
  #bytes = 0;
  #sharedSends = 0;
  #encodedMessages = 0;

  constructor(limits: SharedLogMessagesLimits = {}) {
    this.#perJobBytes = limits.perJobBytes ?? DEFAULT_SHARED_BYTES_PER_JOB;
    this.#totalBytes = limits.totalBytes ?? DEFAULT_SHARED_BYTES_TOTAL;
  }

  /** Messages sent from another follower's encoding, and messages a follower encoded itself. */
  stats(): { shared: number; encoded: number; keptBytes: number } {
    return { shared: this.#sharedSends, encoded: this.#encodedMessages, keptBytes: this.#bytes };
  }

  /**
   * A stream of `job`'s log starts; `selection` names what it receives (the streams it asked for):
   * only streams with the same selection share messages.
   */
  join(job: object, selection: string): LogMessageShare {
    let messages = this.#byJob.get(job);
    if (messages === undefined) this.#byJob.set(job, (messages = { streams: 0, entries: new Map(), bytes: 0 }));
    messages.streams++;
    const state = messages;
    let left = false;
    return {
      lookup: (start) => {
        const entry = state.entries.get(`${selection}@${start}`);
        if (entry === undefined) return undefined;
        entry.sending++;
        this.#sharedSends++;
        return { bytes: entry.bytes, end: entry.end, sent: () => this.#sendDone(entry) };
      },
      offer: (start, end, bytes, release) => {
        this.#encodedMessages++;
        const key = `${selection}@${start}`;
        // A message is a view into a buffer of its own (ChunkBatch's, ~256 KiB): that is what keeping it holds.
        const size = bytes.buffer.byteLength;
        // Alone on this job (nobody to share with), already there, or too big to keep: sent and released.
        if (state.streams < 2 || state.entries.has(key) || size > this.#perJobBytes) return release;
        while (state.bytes + size > this.#perJobBytes) this.#evictOldest(state);
        if (this.#bytes + size > this.#totalBytes) return release;
        const entry: Entry = { key, bytes, size, end, release, sending: 1, cached: true };
        state.entries.set(key, entry);
        state.bytes += size;
        this.#bytes += size;
        return () => this.#sendDone(entry);
      },
      leave: () => {
        if (left) return;
        left = true;
        state.streams--;
        // Alone or gone: nobody left to share with.
        if (state.streams < 2) while (state.entries.size > 0) this.#evictOldest(state);
        if (state.streams === 0) this.#byJob.delete(job);
      },
    };
  }

  #evictOldest(state: JobMessages): void {
    const entry = state.entries.values().next().value;
    if (entry === undefined) return;
    state.entries.delete(entry.key);
    state.bytes -= entry.size;
    this.#bytes -= entry.size;
    entry.cached = false;
    if (entry.sending === 0) entry.release();
  }

  #sendDone(entry: Entry): void {
    entry.sending--;
    if (entry.sending === 0 && !entry.cached) entry.release();
  }
}
