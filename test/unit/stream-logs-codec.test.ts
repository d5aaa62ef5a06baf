// The hand-written StreamLogs serializer must produce exactly the generated encoder's bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { ChunkBatch, decodeStreamLogsResponse, encodeStreamLogsResponse } from '../../src/api/stream-logs-codec';

const generated = (message: pb.StreamLogsResponse) => Buffer.from(pb.StreamLogsResponse.encode(message).finish());

const chunk = fc.record({
  stream: fc.constantFrom(0, 1, 2, 3),
  data: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 16384, maxLength: 20000 })).map((a) => Buffer.from(a)),
  timeUnixMicros: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 127 }), fc.maxSafeNat()),
  offset: fc.oneof(fc.constant(0), fc.maxSafeNat(), fc.integer({ min: 0, max: 1 << 20 })),
  nextOffset: fc.oneof(fc.constant(0), fc.maxSafeNat(), fc.integer({ min: 0, max: 1 << 20 })),
});

describe('StreamLogs response encoding', () => {
  it('is byte-for-byte the generated encoding', () => {
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 8 }), fc.boolean(), (chunks, withFinal) => {
        const message: pb.StreamLogsResponse = {
          chunks,
          finalStatus: withFinal ? pb.Job.fromPartial({ id: 'x', state: pb.JobState.JOB_STATE_EXITED, exitCode: 0, reason: 'exited with code 0', createdAt: new Date(0) }) : undefined,
        };
        assert.deepEqual(encodeStreamLogsResponse(message), generated(message));
        assert.deepEqual(pb.StreamLogsResponse.decode(encodeStreamLogsResponse(message)), pb.StreamLogsResponse.decode(generated(message)));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes to what the generated decoder gives, with views instead of copies', () => {
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 8 }), fc.boolean(), (chunks, withFinal) => {
        const message: pb.StreamLogsResponse = {
          chunks,
          finalStatus: withFinal ? pb.Job.fromPartial({ id: 'y', state: pb.JobState.JOB_STATE_FAILED, exitCode: 3 }) : undefined,
        };
        const bytes = generated(message);
        assert.deepEqual(decodeStreamLogsResponse(bytes), pb.StreamLogsResponse.decode(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('on any input, decodes exactly as the generated decoder does, or fails like it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
        const bytes = Buffer.from(raw);
        let expected: unknown;
        try {
          expected = pb.StreamLogsResponse.decode(bytes);
        } catch {
          assert.throws(() => decodeStreamLogsResponse(bytes));
          return;
        }
        assert.deepEqual(decodeStreamLogsResponse(bytes), expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses negative numbers rather than encode them differently', () => {
    assert.throws(() => encodeStreamLogsResponse({ chunks: [{ stream: 1, data: Buffer.alloc(1), timeUnixMicros: -1, offset: 0, nextOffset: 0 }], finalStatus: undefined }), RangeError);
  });

  it('ChunkBatch: every chunk is one whole record, in order; a message holds at most its capacity unless it holds one bigger record alone', () => {
    fc.assert(
      fc.property(fc.array(chunk, { minLength: 1, maxLength: 12 }), fc.integer({ min: 64, max: 40000 }), (chunks, capacity) => {
        const batch = new ChunkBatch(capacity);
        const messages: Buffer[] = [];
        for (const c of chunks) {
          let taken = batch.append(c.stream, c.data, c.timeUnixMicros, c.offset, c.nextOffset);
          if (taken === null) {
            const { bytes, release } = batch.take();
            messages.push(Buffer.from(bytes)); // copy: release() lets the buffer be reused
            release();
            taken = batch.append(c.stream, c.data, c.timeUnixMicros, c.offset, c.nextOffset);
          }
          assert.equal(taken, c.data.length, 'an empty message takes any record whole');
        }
        if (!batch.empty) messages.push(Buffer.from(batch.take().bytes));
        const decoded = messages.map((m) => pb.StreamLogsResponse.decode(m));
        for (const message of decoded) {
          const payload = message.chunks.reduce((n, c) => n + c.data.length, 0);
          assert.ok(payload <= capacity || message.chunks.length === 1, `a message carries ${payload} bytes in ${message.chunks.length} chunks, capacity ${capacity}`);
        }
        const got = decoded.flatMap((m) => m.chunks);
        assert.deepEqual(got, chunks.map((c) => ({ ...c, data: Buffer.from(c.data) })));
      }),
      { numRuns: 300 },
    );
  });

  it('ChunkBatch: a record bigger than the capacity is one chunk in a message of its own, and buffers are reused after', () => {
    const batch = new ChunkBatch(1024);
    assert.equal(batch.append(1, Buffer.alloc(100, 1), 1, 16, 140), 100);
    assert.equal(batch.append(2, Buffer.alloc(5000, 2), 2, 140, 5164), null);
    const first = batch.take();
    assert.equal(batch.append(2, Buffer.alloc(5000, 2), 2, 140, 5164), 5000);
    assert.equal(batch.append(1, Buffer.alloc(1, 3), 3, 5164, 5189), null, 'nothing joins a message over its capacity');
    const big = batch.take();
    const message = pb.StreamLogsResponse.decode(big.bytes);
    assert.deepEqual(message.chunks.map((c) => [c.data.length, c.offset, c.nextOffset]), [[5000, 140, 5164]]);
    first.release();
    big.release();
    for (let i = 0; i < 20; i++) {
      assert.equal(batch.append(1, Buffer.alloc(900, i), i + 1, 16, 940), 900);
      const again = batch.take();
      assert.equal(pb.StreamLogsResponse.decode(again.bytes).chunks[0]!.data[0], i);
      again.release();
    }
  });
});
