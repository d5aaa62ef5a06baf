// The client's gRPC message framing: messages come out whole and in order however the bytes are cut,
// and a compressed or oversized message is refused with the status grpc-js would give; and how a
// log-session call's end becomes a status (a stream reset is mapped as grpc-js maps it).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { ClientError, StatusCode } from '../../src/client/client-error';
import { frameMessage, GrpcMessageParser, MessageBuffers } from '../../src/client/grpc-frames';
import { endStatus, type CallEnd } from '../../src/client/log-session';

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

  for (const cutAt of [1, 4, 5, 6, 60]) {
    it(`counts the bytes of a message cut short after ${cutAt} of its bytes, prefix included`, () => {
      const parser = new GrpcMessageParser(1 << 20);
      assert.deepEqual(parser.push(frameMessage(randomBytes(100)).subarray(0, cutAt)), []);
      assert.equal(parser.pendingBytes, cutAt);
    });
  }

  it('with MessageBuffers: the same messages; a buffer given back holds a later message, one never given back is never reused', () => {
    const buffers = new MessageBuffers();
    const parser = new GrpcMessageParser(1 << 20, buffers);
    const sizes = [262_000, 262_100, 261_950, 262_175, 100];
    const sent = sizes.map((size) => randomBytes(size));
    const received: Buffer[] = [];
    const copies: Buffer[] = [];
    for (const [i, piece] of cut(Buffer.concat(sent.map(frameMessage)), [7_400]).entries()) {
      for (const message of parser.push(piece)) {
        received.push(message);
        copies.push(Buffer.from(message));
        // The reader is done with every message but the second as soon as it has it.
        if (received.length !== 2) buffers.giveBack(message);
      }
      assert.ok(i < 1000);
    }
    assert.deepEqual(copies, sent, 'each message was whole when it was handed out');
    // (assert.ok, not assert.equal: a failure would print every byte of the buffers.)
    assert.ok(received[1]!.buffer === received[0]!.buffer, 'the first message\'s buffer, given back, holds the second');
    assert.ok(received[2]!.buffer !== received[1]!.buffer, 'the second, never given back, is not reused for the third');
    assert.ok(received[3]!.buffer === received[2]!.buffer, 'the third\'s, given back, holds the fourth');
    assert.ok(received[1]!.equals(sent[1]!), 'and the second still holds its message');
  });

  it('with MessageBuffers: a prefix cut across two pieces never takes a pooled buffer', () => {
    const buffers = new MessageBuffers();
    const parser = new GrpcMessageParser(1 << 20, buffers);
    const [a, b] = [randomBytes(262_000), randomBytes(262_000)];
    const stream = Buffer.concat([frameMessage(a), frameMessage(b)]);
    // a spans the first two pieces; the second ends 2 bytes into b's prefix; b spans the last two.
    const pieces = [stream.subarray(0, 100_000), stream.subarray(100_000, 262_007), stream.subarray(262_007, 400_000), stream.subarray(400_000)];
    const [first] = [...parser.push(pieces[0]!), ...parser.push(pieces[1]!)];
    assert.ok(first!.equals(a));
    buffers.giveBack(first!);
    const [second] = [...parser.push(pieces[2]!), ...parser.push(pieces[3]!)];
    assert.ok(second!.equals(b));
    assert.ok(second!.buffer === first!.buffer, 'b went into the buffer a gave back, not a fresh one');
  });

  it('MessageBuffers takes back only buffers it made, each once', () => {
    const buffers = new MessageBuffers();
    const foreign = Buffer.allocUnsafeSlow(70_000);
    buffers.giveBack(foreign);
    assert.notEqual(buffers.take(70_000).buffer, foreign.buffer);
    const made = buffers.take(70_000);
    buffers.giveBack(made);
    buffers.giveBack(made); // twice: must not be handed out twice
    const first = buffers.take(70_000);
    const second = buffers.take(70_000);
    assert.equal(first.buffer, made.buffer);
    assert.notEqual(second.buffer, made.buffer);
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

describe('how a log-session call ends', () => {
  const ended = (fields: Partial<CallEnd>): CallEnd => ({ status: null, readEnded: true, connectionLost: null, ...fields });
  const describeEnd = (error: ClientError | null) => (error === null ? 'OK' : `${error.codeName}: ${error.details}`);

  for (const [name, code, expected] of [
    ['ENHANCE_YOUR_CALM', 11, 'RESOURCE_EXHAUSTED: Bandwidth exhausted or memory limit exceeded'],
    ['REFUSED_STREAM', 7, 'UNAVAILABLE: Stream refused by server'],
    ['INTERNAL_ERROR', 2, 'INTERNAL: Received RST_STREAM with code 2 (Internal server error)'],
    ['CANCEL', 8, 'CANCELLED: Call cancelled'],
    ['INADEQUATE_SECURITY', 12, 'PERMISSION_DENIED: Protocol not secure enough'],
    ['PROTOCOL_ERROR', 1, 'INTERNAL: Received RST_STREAM with code 1'],
  ] as const) {
    it(`a reset with ${name} and no status: ${expected.split(':')[0]}, as grpc-js maps it`, () => {
      assert.equal(describeEnd(endStatus(ended({ readEnded: false }), code, 0, 'h:1')), expected);
    });
  }

  it('the trailers once every byte is read: their status, the message percent-decoded, the runner address for FAILED_PRECONDITION', () => {
    assert.equal(endStatus(ended({ status: { 'grpc-status': '0' } }), 0, 0, 'h:1'), null);
    const error = endStatus(ended({ status: { 'grpc-status': '9', 'grpc-message': 'run%20elsewhere', 'jobworker-runner-address': 'b:2' } }), 0, 0, 'h:1');
    assert.deepEqual([error?.codeName, error?.details, error?.runnerAddress], ['FAILED_PRECONDITION', 'run elsewhere', 'b:2']);
  });

  it('trailers but the answer not all read (the connection closed first): UNAVAILABLE, not the trailers\' OK', () => {
    assert.equal(describeEnd(endStatus(ended({ status: { 'grpc-status': '0' }, readEnded: false }), 0, 0, 'h:1')), 'UNAVAILABLE: connection to h:1 closed before the rest of the answer was read');
  });

  it('the connection lost before a status: UNAVAILABLE naming it, whatever reset Node made up', () => {
    assert.equal(describeEnd(endStatus(ended({ readEnded: false, connectionLost: new Error('read ECONNRESET') }), 8, 0, 'h:1')), 'UNAVAILABLE: connection to h:1 failed: read ECONNRESET');
  });
});
