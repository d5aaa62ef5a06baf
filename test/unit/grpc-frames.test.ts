// The client's gRPC message framing: messages come out whole and in order however the bytes are cut,
// and a compressed or oversized message is refused with the status grpc-js would give.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { ClientError, StatusCode } from '../../src/client/client-error';
import { frameMessage, GrpcMessageParser } from '../../src/client/grpc-frames';

function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

describe('gRPC message framing (client)', () => {
  const messages = [Buffer.alloc(0), randomBytes(1), randomBytes(300), randomBytes(70_000), Buffer.from('last')];
  const stream = Buffer.concat(messages.map(frameMessage));

  it('frames with a zero flag byte and a big-endian length', () => {
    assert.deepEqual(frameMessage(Buffer.from('abc')), Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]));
  });

  for (const sizes of [[1], [2, 3], [5], [7, 8191], [16_384], [stream.length]]) {
    it(`gives back every message, in order, from pieces of ${sizes.join(', ')} bytes`, () => {
      const parser = new GrpcMessageParser(1 << 20);
      const out = cut(stream, sizes).flatMap((piece) => parser.push(piece));
      assert.deepEqual(out, messages);
      assert.equal(parser.pendingBytes, 0);
    });
  }

  it('counts the bytes of a message cut short', () => {
    const parser = new GrpcMessageParser(1 << 20);
    assert.deepEqual(parser.push(frameMessage(randomBytes(100)).subarray(0, 60)), []);
    assert.equal(parser.pendingBytes, 55);
  });

  it('refuses a compressed message with INTERNAL', () => {
    const framed = frameMessage(Buffer.from('x'));
    framed[0] = 1;
    assert.throws(
      () => new GrpcMessageParser(1 << 20).push(framed),
      (error: unknown) => error instanceof ClientError && error.code === StatusCode.INTERNAL && /compressed/.test(error.message),
    );
  });

  it('refuses a message over the limit with RESOURCE_EXHAUSTED as soon as its length is known', () => {
    const prefix = Buffer.from([0, 0, 0x10, 0, 1]); // 1 MiB + 1, none of it sent
    assert.throws(
      () => new GrpcMessageParser(1 << 20).push(prefix),
      (error: unknown) => error instanceof ClientError && error.code === StatusCode.RESOURCE_EXHAUSTED && error.message === 'Received message larger than max (1048577 vs. 1048576)',
    );
  });
});
