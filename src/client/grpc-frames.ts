// gRPC's length-prefixed messages on an HTTP/2 stream (grpc/doc/PROTOCOL-HTTP2.md, "Length-Prefixed-
// Message"): one byte of flags (bit 0: compressed), four bytes of length (big-endian), the message.
// The bytes arrive in pieces of whatever size TLS and HTTP/2 cut them into (~8 KiB here), so a
// message is usually gathered from many pieces: copied once into a buffer of its own, or handed out
// as a view when one piece holds it whole.
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

/** Cuts a stream of bytes into gRPC messages; refuses compressed messages and ones over `maxMessageBytes`. */
export class GrpcMessageParser {
  #pieces: Buffer[] = [];
  #buffered = 0;
  /** Length of the message being gathered, once its prefix is in; -1 before that. */
  #length = -1;

  constructor(readonly maxMessageBytes: number) {}

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
        const prefix = this.#take(MESSAGE_PREFIX_BYTES);
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
      (messages ??= []).push(this.#take(this.#length));
      this.#length = -1;
    }
  }

  /** The next `n` buffered bytes: a view when the first piece holds them, else one copy. */
  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0); // an empty message (all fields default) is a message
    const first = this.#pieces[0]!;
    if (first.length >= n) {
      const taken = first.subarray(0, n);
      if (first.length === n) this.#pieces.shift();
      else this.#pieces[0] = first.subarray(n);
      this.#buffered -= n;
      return taken;
    }
    const taken = Buffer.allocUnsafe(n);
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
