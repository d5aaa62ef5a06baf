// Log messages framed in place. grpc-js prefixes every message it sends with gRPC's 5 bytes
// (compressed flag, length) by allocating a new buffer and copying the whole message into it
// (BaseServerInterceptingCall.serializeMessage). For a log stream that is a second copy of every
// byte and a fresh 256 KiB buffer per message; the external memory those buffers report made V8
// run a full mark-compact every ~100 ms once the daemon held a few hundred jobs, and one follower
// got ~150 MB/s instead of ~260 (issue 17, docs/benchmarks.md).
//
// ChunkBatch leaves MESSAGE_PREFIX_BYTES free in front of each message; a message marked here is
// framed by writing the prefix there. This replaces one method of grpc-js's internals, so
// installPreframing() checks that it is there, and the unit test checks the frames are the ones
// grpc-js makes. If a grpc-js release moves it, nothing is patched and messages are copied as
// before: slower, never wrong.
import { MESSAGE_PREFIX_BYTES } from '../api/stream-logs-codec';

interface SerializingCall {
  serializeMessage(value: unknown): Buffer;
}

/**
 * Messages with their prefix room free; weak: a message dropped is forgotten. One message may be sent
 * on several streams (followers of one job share them): each send writes the same prefix again.
 */
const unframed = new WeakSet<Buffer>();

/**
 * Marks `message` (which must have MESSAGE_PREFIX_BYTES of its buffer free in front of it, as
 * ChunkBatch leaves them) to be framed in place when grpc-js sends it. Returns it.
 */
export function framedInPlace(message: Buffer): Buffer {
  if (message.byteOffset < MESSAGE_PREFIX_BYTES) throw new RangeError(`a message framed in place needs ${MESSAGE_PREFIX_BYTES} bytes of its buffer in front of it`);
  unframed.add(message);
  return message;
}

/** The message with gRPC's prefix written in the bytes in front of it: the same memory, no copy. */
function frameInPlace(message: Buffer): Buffer {
  const framed = Buffer.from(message.buffer, message.byteOffset - MESSAGE_PREFIX_BYTES, message.length + MESSAGE_PREFIX_BYTES);
  framed[0] = 0; // not compressed
  framed.writeUInt32BE(message.length, 1);
  return framed;
}

let installed: boolean | undefined;

/**
 * Makes grpc-js frame marked messages in place (once per process). False if this grpc-js has no
 * such method to replace: then every message is copied, as grpc-js does by default.
 */
export function installPreframing(): boolean {
  if (installed !== undefined) return installed;
  let prototype: SerializingCall | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    prototype = (require('@grpc/grpc-js/build/src/server-interceptors') as { BaseServerInterceptingCall?: { prototype: SerializingCall } }).BaseServerInterceptingCall?.prototype;
  } catch {
    prototype = undefined;
  }
  const original = prototype?.serializeMessage;
  if (prototype === undefined || typeof original !== 'function' || original.length !== 1) return (installed = false);
  prototype.serializeMessage = function serializeMessage(this: SerializingCall, value: unknown): Buffer {
    if (Buffer.isBuffer(value) && unframed.has(value)) return frameInPlace(value);
    return original.call(this, value);
  };
  return (installed = true);
}
