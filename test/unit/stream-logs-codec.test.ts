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

  it('ChunkBatch: messages that decode to every byte appended, split at the capacity, in order', () => {
    fc.assert(
      fc.property(fc.array(chunk, { minLength: 1, maxLength: 12 }), fc.integer({ min: 64, max: 40000 }), (chunks, capacity) => {
        const batch = new ChunkBatch(capacity);
        const messages: Buffer[] = [];
        for (const c of chunks) {
          let data: Buffer = c.data;
          for (;;) {
            const taken = batch.append(c.stream, data, c.timeUnixMicros, c.offset, c.nextOffset);
            if (taken === null) {
              const { bytes, release } = batch.take();
              messages.push(Buffer.from(bytes)); // copy: release() lets the buffer be reused
              release();
              continue;
            }
            data = data.subarray(taken);
            if (data.length === 0) break;
          }
        }
        if (!batch.empty) messages.push(Buffer.from(batch.take().bytes));
        const decoded = messages.map((m) => pb.StreamLogsResponse.decode(m));
        for (const message of decoded) {
          const payload = message.chunks.reduce((n, c) => n + c.data.length, 0);
          assert.ok(payload <= Math.max(capacity, 1), `a message carries ${payload} bytes, capacity ${capacity}`);
        }
        const got = decoded.flatMap((m) => m.chunks);
        // Per appended chunk, the pieces carry its fields and, concatenated, exactly its data.
        let i = 0;
        for (const c of chunks) {
          const pieces: Buffer[] = [];
          do {
            const piece = got[i++]!;
            assert.deepEqual([piece.stream, piece.timeUnixMicros, piece.offset, piece.nextOffset], [c.stream, c.timeUnixMicros, c.offset, c.nextOffset]);
            pieces.push(piece.data);
          } while (Buffer.concat(pieces).length < c.data.length);
          assert.deepEqual(Buffer.concat(pieces), c.data);
        }
        assert.equal(i, got.length);
      }),
      { numRuns: 300 },
    );
  });
});
