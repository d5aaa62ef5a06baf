// gRPC's length-prefixed messages on an HTTP/2 stream (grpc/doc/PROTOCOL-HTTP2.md, "Length-Prefixed-
// Message"): one byte of flags (bit 0: compressed), four bytes of length (big-endian), the message.
// The bytes arrive in pieces of whatever size TLS and HTTP/2 cut them into (~8 KiB here), so a
// message is usually gathered from many pieces: copied once into a buffer of its own (or one a
// MessageBuffers hands out again once its reader is done with it), or handed out as a view when one
// piece holds it whole.
import { MESSAGE_PREFIX_BYTES } from '../api/stream-logs-codec';
import { ClientError, StatusCode } from './client-error';

/** What push() answers for a piece that completes no message (most pieces): no array each time. */
const NO_MESSAGES: readonly Buffer[] = Object.freeze([]);

/** `message` with its 5-byte prefix (not compressed), ready to write to a request stream. */
export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, MESSAGE_PREFIX_BYTES);
  return framed;
}

/** Messages up to this size are gathered into buffers a MessageBuffers can take back. */
const POOLED_MAX_BYTES = 1 << 20;
/**
 * Pooled buffers are made a quarter larger than the message they are made for, in multiples of
 * this: messages of one stream differ by a few bytes (a log stream's are ~256 KiB), and a buffer
 * given back must fit the next one.
 */
const POOLED_STEP_BYTES = 64 << 10;
/** Buffers kept for reuse at most; more given back are left to the GC. */
const POOLED_FREE_MAX = 4;

/**
 * Buffers for messages gathered from several pieces, taken back once their reader is done with
 * them (giveBack) and used again for later messages. At hundreds of MB/s a fresh buffer per message
 * is most of a client's work: its memory is external to V8's heap, and allocating it at that rate
 * starts a full garbage collection every few dozen milliseconds. Only buffers this pool made are
 * taken back, each once.
 */
export class MessageBuffers {
  #free: Buffer[] = [];
  /** Buffers this pool made that are handed out now: the only ones it takes back. */
  #out = new WeakSet<ArrayBufferLike>();

  /** A buffer of exactly `n` bytes (contents undefined). */
  take(n: number): Buffer {
    for (let i = this.#free.length - 1; i >= 0; i--) {
      const whole = this.#free[i]!;
      if (whole.length < n) continue;
      this.#free.splice(i, 1);
      this.#out.add(whole.buffer);
      return whole.subarray(0, n);
    }
    if (n > POOLED_MAX_BYTES) return Buffer.allocUnsafe(n);
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    const whole = Buffer.allocUnsafeSlow(Math.ceil((n * 1.25) / POOLED_STEP_BYTES) * POOLED_STEP_BYTES);
    this.#out.add(whole.buffer);
    return whole.subarray(0, n);
  }

  /** Takes back the buffer behind `message` if this pool made it: its bytes will be overwritten. */
  giveBack(message: Buffer): void {
    const backing = message.buffer;
    if (!this.#out.delete(backing)) return;
    if (this.#free.length < POOLED_FREE_MAX) this.#free.push(Buffer.from(backing, 0, backing.byteLength));
  }
}

/** Cuts a stream of bytes into gRPC messages; refuses compressed messages and ones over `maxMessageBytes`. */
export class GrpcMessageParser {
  #pieces: Buffer[] = [];
  #buffered = 0;
  /** Length of the message being gathered, once its prefix is in; -1 before that. */
  #length = -1;

  readonly #buffers: MessageBuffers | undefined;

  /** With `buffers`, messages gathered from several pieces are written into buffers it hands out. */
  constructor(
    readonly maxMessageBytes: number,
    buffers?: MessageBuffers,
  ) {
    this.#buffers = buffers;
  }

  /** Bytes received of a message not yet whole, its prefix included (a stream that ends with some is cut short). */
  get pendingBytes(): number {
    return this.#buffered + (this.#length >= 0 ? MESSAGE_PREFIX_BYTES : 0);
  }

  /** Takes the next piece of the stream; returns the messages it completes, in order. */
  push(piece: Buffer): readonly Buffer[] {
    if (piece.length === 0) return NO_MESSAGES;
    this.#pieces.push(piece);
    this.#buffered += piece.length;
    let messages: Buffer[] | undefined;
    for (;;) {
      if (this.#length < 0) {
        if (this.#buffered < MESSAGE_PREFIX_BYTES) return messages ?? NO_MESSAGES;
        const prefix = this.#take(MESSAGE_PREFIX_BYTES, false);
        if ((prefix[0]! & 1) !== 0) {
          throw new ClientError(StatusCode.INTERNAL, 'the server sent a compressed message; this client asks for none (grpc-accept-encoding: identity)');
        }
        const length = prefix.readUInt32BE(1);
        if (length > this.maxMessageBytes) {
          throw new ClientError(StatusCode.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${this.maxMessageBytes})`);
        }
        this.#length = length;
      }
      if (this.#buffered < this.#length) return messages ?? NO_MESSAGES;
      (messages ??= []).push(this.#take(this.#length, true));
      this.#length = -1;
    }
  }

  /**
   * The next `n` buffered bytes: a view when the first piece holds them, else one copy (a message
   * into a buffer from the pool, when `message` and there is one; a prefix never).
   */
  #take(n: number, message: boolean): Buffer {
    if (n === 0) return Buffer.alloc(0); // an empty message (all fields default) is a message
    const first = this.#pieces[0]!;
    if (first.length >= n) {
      const taken = first.subarray(0, n);
      if (first.length === n) this.#pieces.shift();
      else this.#pieces[0] = first.subarray(n);
      this.#buffered -= n;
      return taken;
    }
    const taken = (message ? this.#buffers?.take(n) : undefined) ?? Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const piece = this.#pieces[0]!;
      const used = Math.min(piece.length, n - filled);
      piece.copy(taken, filled, 0, used);
      filled += used;
      if (used === piece.length) this.#pieces.shift();
      else this.#pieces[0] = piece.subarray(used);
    }
    this.#buffered -= n;
    return taken;
  }
}
