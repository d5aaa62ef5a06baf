// The StreamLogs response codec, shared by the server (encoding) and the client (decoding), by hand
// for the one message where it matters: it carries the jobs' output, hundreds of MB/s of it. The generated encoder copies each payload into a chunk list
// and again when joining it (and lets V8 collect the pieces); this one computes the size, allocates
// once and copies each payload once. Same bytes as the generated encoder (a test checks it against
// the generated one); `final_status`, sent once per stream, still goes through the generated code.
import { Job, StreamLogsResponse, type LogChunk } from '../gen/jobworker/v1/jobworker';

function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Non-negative integers up to 2^53 (offsets, sizes, times): base-128, least significant first. */
function writeVarint(buf: Buffer, at: number, value: number): number {
  while (value >= 128) {
    buf[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[at++] = value;
  return at;
}

// Field tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
const CHUNKS = 0x0a;
const FINAL_STATUS = 0x12;
const STREAM = 0x08;
const DATA = 0x12;
const TIME = 0x18;
const OFFSET = 0x20;
const NEXT_OFFSET = 0x28;

// A chunk's fields are passed one by one (not as a LogChunk) so the server's hot path allocates
// no object per record.
function chunkBodySize(stream: number, dataLength: number, timeUnixMicros: number, offset: number, nextOffset: number): number {
  let size = 0;
  if (stream !== 0) size += 1 + varintSize(stream);
  if (dataLength !== 0) size += 1 + varintSize(dataLength) + dataLength;
  if (timeUnixMicros !== 0) size += 1 + varintSize(timeUnixMicros);
  if (offset !== 0) size += 1 + varintSize(offset);
  if (nextOffset !== 0) size += 1 + varintSize(nextOffset);
  return size;
}

/** Writes one entry of `chunks` (tag, length, fields) at `at`; returns the position after it. */
function writeChunk(buf: Buffer, at: number, stream: number, data: Uint8Array, timeUnixMicros: number, offset: number, nextOffset: number): number {
  buf[at++] = CHUNKS;
  at = writeVarint(buf, at, chunkBodySize(stream, data.length, timeUnixMicros, offset, nextOffset));
  if (stream !== 0) {
    buf[at++] = STREAM;
    at = writeVarint(buf, at, stream);
  }
  if (data.length !== 0) {
    buf[at++] = DATA;
    at = writeVarint(buf, at, data.length);
    buf.set(data, at);
    at += data.length;
  }
  if (timeUnixMicros !== 0) {
    buf[at++] = TIME;
    at = writeVarint(buf, at, timeUnixMicros);
  }
  if (offset !== 0) {
    buf[at++] = OFFSET;
    at = writeVarint(buf, at, offset);
  }
  if (nextOffset !== 0) {
    buf[at++] = NEXT_OFFSET;
    at = writeVarint(buf, at, nextOffset);
  }
  return at;
}

export function encodeStreamLogsResponse(message: StreamLogsResponse): Buffer {
  for (const chunk of message.chunks) {
    // Negative values are encoded differently (ten-byte varints): never produced here, so refuse.
    if (chunk.stream < 0 || chunk.timeUnixMicros < 0 || chunk.offset < 0 || chunk.nextOffset < 0) {
      throw new RangeError('negative field in a log chunk');
    }
  }
  const bodies = message.chunks.map((chunk) => chunkBodySize(chunk.stream, chunk.data.length, chunk.timeUnixMicros, chunk.offset, chunk.nextOffset));
  const final = message.finalStatus === undefined ? undefined : Job.encode(message.finalStatus).finish();
  let size = 0;
  for (const body of bodies) size += 1 + varintSize(body) + body;
  if (final !== undefined) size += 1 + varintSize(final.length) + final.length;

  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  for (const chunk of message.chunks) at = writeChunk(buf, at, chunk.stream, chunk.data, chunk.timeUnixMicros, chunk.offset, chunk.nextOffset);
  if (final !== undefined) {
    buf[at++] = FINAL_STATUS;
    at = writeVarint(buf, at, final.length);
    buf.set(final, at);
    at += final.length;
  }
  if (at !== size) throw new Error(`StreamLogsResponse encoder wrote ${at} of ${size} bytes`);
  return buf;
}

/** Reads a varint of at most 2^53 at `at`; returns [value, next position]. Throws on malformed input. */
function readVarint(buf: Buffer, at: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (at >= end) throw new RangeError('truncated varint');
    const byte = buf[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (value > Number.MAX_SAFE_INTEGER) throw new RangeError('varint too large for a JavaScript number');
      return [value, at];
    }
    scale *= 128;
  }
  throw new RangeError('varint too long for a JavaScript number');
}

function skipField(buf: Buffer, at: number, end: number, wireType: number): number {
  switch (wireType) {
    case 0:
      for (let i = 0; i < 10; i++) {
        if (at >= end) throw new RangeError('truncated varint');
        if (buf[at++]! < 0x80) return at;
      }
      throw new RangeError('varint too long');
    case 1:
      return at + 8;
    case 2: {
      const [length, next] = readVarint(buf, at, end);
      return next + length;
    }
    case 5:
      return at + 4;
    default:
      throw new RangeError(`unsupported wire type ${wireType}`);
  }
}

function decodeChunk(buf: Buffer, at: number, end: number): LogChunk {
  const chunk: LogChunk = { stream: 0, data: Buffer.alloc(0), timeUnixMicros: 0, offset: 0, nextOffset: 0 };
  while (at < end) {
    let tag: number;
    [tag, at] = readVarint(buf, at, end);
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 2 && wireType === 2) {
      let length: number;
      [length, at] = readVarint(buf, at, end);
      if (at + length > end) throw new RangeError('log chunk data runs past its message');
      chunk.data = buf.subarray(at, at + length); // a view: the message buffer is this chunk's alone
      at += length;
    } else if (wireType === 0 && field >= 1 && field <= 5 && field !== 2) {
      let value: number;
      [value, at] = readVarint(buf, at, end);
      if (field === 1) chunk.stream = value;
      else if (field === 3) chunk.timeUnixMicros = value;
      else if (field === 4) chunk.offset = value;
      else chunk.nextOffset = value;
    } else {
      at = skipField(buf, at, end, wireType);
    }
  }
  if (at !== end) throw new RangeError('log chunk overruns its length');
  return chunk;
}

/**
 * The client's side: chunk data are views into the received message instead of copies (the
 * generated decoder copies every payload). Anything unusual (negative or huge numbers) falls back to
 * the generated decoder, so the result is always what it would give.
 */
export function decodeStreamLogsResponse(buf: Buffer): StreamLogsResponse {
  try {
    const message: StreamLogsResponse = { chunks: [], finalStatus: undefined };
    let at = 0;
    const end = buf.length;
    while (at < end) {
      let tag: number;
      [tag, at] = readVarint(buf, at, end);
      const field = Math.floor(tag / 8);
      const wireType = tag % 8;
      if ((field === 1 || field === 2) && wireType === 2) {
        let length: number;
        [length, at] = readVarint(buf, at, end);
        if (at + length > end) throw new RangeError('field runs past the message');
        if (field === 1) message.chunks.push(decodeChunk(buf, at, at + length));
        else message.finalStatus = Job.decode(buf.subarray(at, at + length));
        at += length;
      } else {
        at = skipField(buf, at, end, wireType);
      }
    }
    if (at !== end) throw new RangeError('message overruns its length');
    return message;
  } catch {
    return StreamLogsResponse.decode(buf);
  }
}

/** Longest encoding of one chunk's fields other than its data (tags, lengths, numbers). */
const CHUNK_OVERHEAD = 1 + 5 + 2 + 1 + 5 + 1 + 9 + 1 + 9 + 1 + 9;

/**
 * Room left in front of every message ChunkBatch encodes: gRPC's message prefix (a compressed flag
 * and a 4-byte length), written there by ../server/preframed-messages.ts instead of grpc-js copying
 * the message into a new buffer to prepend it.
 */
export const MESSAGE_PREFIX_BYTES = 5;

/**
 * Encodes log chunks straight into a StreamLogsResponse message buffer as they are read, so each
 * output byte is copied once (from the read buffer into the message) and message buffers are
 * recycled once grpc-js has sent them: a fast stream allocates almost nothing per message. Each
 * message starts MESSAGE_PREFIX_BYTES into its buffer, so it can be framed in place.
 *
 * A record is never split across messages: every chunk carries one whole record (or, for a
 * tail_lines start, the end of one), so its `next_offset` is a record boundary and resuming there
 * yields exactly the bytes after the chunk. A record that does not fit the room left goes into the
 * next message; one bigger than the capacity goes alone into a message sized for it.
 */
export class ChunkBatch {
  #buf: Buffer;
  #at = MESSAGE_PREFIX_BYTES;
  #free: Buffer[] = [];

  /** `capacity`: the output bytes one message carries, unless it holds a single bigger record. */
  constructor(readonly capacity: number) {
    this.#buf = Buffer.allocUnsafe(this.#standardSize);
  }

  get #standardSize(): number {
    return MESSAGE_PREFIX_BYTES + this.capacity + CHUNK_OVERHEAD;
  }

  get empty(): boolean {
    return this.#at === MESSAGE_PREFIX_BYTES;
  }

  /**
   * Appends `data` (one record's bytes) as one chunk and returns its length, or null when the
   * message has no room for it (take() the message and append again: an empty message takes any
   * record).
   */
  append(stream: number, data: Uint8Array, timeUnixMicros: number, offset: number, nextOffset: number): number | null {
    if (!this.empty && this.#at - MESSAGE_PREFIX_BYTES + data.length > this.capacity) return null;
    if (this.#buf.length < MESSAGE_PREFIX_BYTES + data.length + CHUNK_OVERHEAD) {
      // Only an empty message gets here (capacity + overhead fits anything accepted above).
      this.#recycle(this.#buf);
      this.#buf = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + data.length + CHUNK_OVERHEAD);
    }
    this.#at = writeChunk(this.#buf, this.#at, stream, data, timeUnixMicros, offset, nextOffset);
    return data.length;
  }

  /**
   * The message so far (with MESSAGE_PREFIX_BYTES of its buffer in front of it), and a release() to
   * call once it has been sent (its buffer is reused).
   */
  take(): { bytes: Buffer; release(): void } {
    const full = this.#buf;
    const bytes = full.subarray(MESSAGE_PREFIX_BYTES, this.#at);
    this.#buf = this.#free.pop() ?? Buffer.allocUnsafe(this.#standardSize);
    this.#at = MESSAGE_PREFIX_BYTES;
    return { bytes, release: () => this.#recycle(full) };
  }

  /**
   * Keeps a sent buffer for the next messages: up to 8 of the standard size, and one sized for a
   * big record (a stream of big records would otherwise allocate one per message; keeping more
   * would hold up to 1 MiB each for nothing).
   */
  #recycle(buf: Buffer): void {
    if (this.#free.length >= 8) return;
    const standard = this.#standardSize;
    if (buf.length > standard && this.#free.some((kept) => kept.length > standard)) return;
    this.#free.push(buf);
  }
}

/** What the server writes to a StreamLogs call: a message, or one ChunkBatch has already encoded. */
export type OutgoingStreamLogsResponse = StreamLogsResponse | Buffer;

/** The StreamLogs serializer: messages built by ChunkBatch are already encoded. */
export function serializeStreamLogsResponse(message: OutgoingStreamLogsResponse): Buffer {
  return Buffer.isBuffer(message) ? message : encodeStreamLogsResponse(message);
}
