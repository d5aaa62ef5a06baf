// Log messages framed in place (issue 17): grpc-js's own serializeMessage, replaced for messages
// ChunkBatch encoded, must produce the very frames grpc-js makes, without copying the message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BaseServerInterceptingCall } from '@grpc/grpc-js/build/src/server-interceptors';

import { ChunkBatch, MESSAGE_PREFIX_BYTES } from '../../src/api/stream-logs-codec';
import { framedInPlace, installPreframing } from '../../src/server/preframed-messages';
import * as pb from '../../src/gen/jobworker/v1/jobworker';

/** grpc-js's frame: flag 0, the length big-endian, the message. */
function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(MESSAGE_PREFIX_BYTES);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Whether two views are the same bytes of the same memory (not just equal contents). */
function sameMemory(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
}

// What a server call's serializeMessage sees as `this` (the handler's identity serializer, as the
// StreamLogs handler's is for encoded messages).
const call = { handler: { serialize: (value: Buffer) => value } };
const serialize = (value: Buffer): Buffer => (BaseServerInterceptingCall.prototype as unknown as { serializeMessage(this: typeof call, v: Buffer): Buffer }).serializeMessage.call(call, value);

describe('log messages framed in place', () => {
  it('installs on the grpc-js this package depends on', () => {
    assert.equal(installPreframing(), true);
    assert.equal(installPreframing(), true, 'a second call changes nothing');
  });

  it('a ChunkBatch message marked for it is framed exactly as grpc-js frames it, in its own memory', () => {
    installPreframing();
    const batch = new ChunkBatch(1024);
    batch.append(1, Buffer.from('hello\n'), 7, 16, 38);
    const { bytes } = batch.take();
    const expected = grpcFrame(bytes);
    const framed = serialize(framedInPlace(bytes));
    assert.deepEqual(framed, expected);
    assert.ok(sameMemory(framed.subarray(MESSAGE_PREFIX_BYTES), bytes), 'no copy: the frame is the message\'s own memory');
    assert.equal(pb.StreamLogsResponse.decode(framed.subarray(MESSAGE_PREFIX_BYTES)).chunks[0]!.data.toString(), 'hello\n');
  });

  it('other messages are copied and framed by grpc-js as before', () => {
    installPreframing();
    const plain = Buffer.from('not marked');
    const framed = serialize(plain);
    assert.deepEqual(framed, grpcFrame(plain));
    assert.ok(!sameMemory(framed.subarray(MESSAGE_PREFIX_BYTES), plain));

  });

  it('a marked message sent on several streams (followers sharing it) is framed in place each time', () => {
    installPreframing();
    const batch = new ChunkBatch(64);
    batch.append(2, Buffer.from('x'), 1, 16, 33);
    const marked = framedInPlace(batch.take().bytes);
    const once = serialize(marked);
    const again = serialize(marked);
    assert.deepEqual(once, grpcFrame(marked));
    assert.deepEqual(again, grpcFrame(marked));
    assert.ok(sameMemory(again.subarray(MESSAGE_PREFIX_BYTES), marked), 'no copy the second time either');
  });

  it('refuses a message with no room in front of it', () => {
    assert.throws(() => framedInPlace(Buffer.alloc(3)), /needs 5 bytes of its buffer in front of it/);
  });
});
