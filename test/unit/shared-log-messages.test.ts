// Encoded log messages shared by the followers of one job (issue 17): kept only while another
// follower may use them, within the per-job and total bounds, and a buffer goes back to the follower
// that encoded it only once it is neither kept nor being sent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SharedLogMessages } from '../../src/server/shared-log-messages';

const KIB = 1024;

/** A message of `size` bytes and a record of whether its buffer was given back. */
function message(size: number): { bytes: Buffer; released: () => boolean; release: () => void } {
  let count = 0;
  return { bytes: Buffer.alloc(size), released: () => count > 0, release: () => void count++ };
}

describe('shared log messages', () => {
  it('a message one follower offers is what another at the same place and selection gets', () => {
    const shared = new SharedLogMessages();
    const job = {};
    const a = shared.join(job, 'stdout,stderr');
    const b = shared.join(job, 'stdout,stderr');
    const other = shared.join(job, 'stdout');
    const m = message(100);
    const sentByA = a.offer(16, 300, m.bytes, m.release);
    const got = b.lookup(16);
    assert.ok(got !== undefined);
    assert.equal(got.bytes, m.bytes, 'the very buffer, not a copy');
    assert.equal(got.end, 300);
    assert.equal(b.lookup(300), undefined, 'nothing starts where nobody has been');
    assert.equal(other.lookup(16), undefined, 'another selection of streams is another message');
    assert.equal(shared.join({}, 'stdout,stderr').lookup(16), undefined, 'another job is another log');
    sentByA();
    got.sent();
    assert.equal(m.released(), false, 'kept for followers still to come');
    assert.deepEqual(shared.stats(), { shared: 1, encoded: 1, keptBytes: 100 });
  });

  it('a follower alone on its job keeps nothing: its buffer goes back once sent', () => {
    const shared = new SharedLogMessages();
    const alone = shared.join({}, 'stdout,stderr');
    const m = message(100);
    const sent = alone.offer(16, 300, m.bytes, m.release);
    assert.equal(alone.lookup(16), undefined);
    assert.equal(m.released(), false, 'not while grpc-js may still be writing it');
    sent();
    assert.equal(m.released(), true);
    assert.equal(shared.stats().keptBytes, 0);
  });

  it('keeps the newest messages within the per-job bound; an evicted one goes back once its sends are done', () => {
    const shared = new SharedLogMessages({ perJobBytes: 300 * KIB, totalBytes: 1 << 30 });
    const job = {};
    const a = shared.join(job, 's');
    shared.join(job, 's');
    const messages = [0, 1, 2, 3].map(() => message(100 * KIB));
    const sends = messages.map((m, i) => a.offer(i * 1000, (i + 1) * 1000, m.bytes, m.release));
    const reader = shared.join(job, 's');
    const stillSending = reader.lookup(1000);
    assert.ok(stillSending !== undefined);
    for (const sent of sends) sent();
    assert.equal(shared.stats().keptBytes, 300 * KIB);
    // A fifth message evicts the oldest kept ones: the first (already out) and the second (one send pending).
    const fifth = message(100 * KIB);
    a.offer(4000, 5000, fifth.bytes, fifth.release)();
    assert.equal(reader.lookup(0), undefined);
    assert.equal(messages[0]!.released(), true);
    assert.equal(reader.lookup(1000), undefined, 'evicted');
    assert.equal(messages[1]!.released(), false, 'a send of it is still in grpc-js');
    stillSending.sent();
    assert.equal(messages[1]!.released(), true);
    assert.ok(reader.lookup(4000) !== undefined);
  });

  it('keeps nothing beyond the total bound, and nothing bigger than a job may keep', () => {
    const shared = new SharedLogMessages({ perJobBytes: 200 * KIB, totalBytes: 250 * KIB });
    const first = {};
    const second = {};
    const [a] = [shared.join(first, 's'), shared.join(first, 's')];
    const [b] = [shared.join(second, 's'), shared.join(second, 's')];
    const m1 = message(150 * KIB);
    a.offer(0, 1, m1.bytes, m1.release)();
    const m2 = message(150 * KIB);
    b.offer(0, 1, m2.bytes, m2.release)();
    assert.equal(b.lookup(0), undefined, 'over the total: sent, not kept');
    assert.equal(m2.released(), true);
    const huge = message(300 * KIB);
    a.offer(1, 2, huge.bytes, huge.release)();
    assert.equal(a.lookup(1), undefined);
    assert.equal(huge.released(), true);
    assert.equal(shared.stats().keptBytes, 150 * KIB);
  });

  it('when a job is down to one follower, or none, its messages go back', () => {
    const shared = new SharedLogMessages();
    const job = {};
    const a = shared.join(job, 's');
    const b = shared.join(job, 's');
    const c = shared.join(job, 's');
    const m = message(10);
    a.offer(0, 10, m.bytes, m.release)();
    a.leave();
    a.leave(); // twice changes nothing
    assert.equal(m.released(), false, 'b and c may still use it');
    const got = b.lookup(0);
    assert.ok(got !== undefined);
    got.sent();
    c.leave();
    assert.equal(m.released(), true, 'b is alone: nobody to share with');
    assert.equal(b.lookup(0), undefined);
    b.leave();
    assert.equal(shared.stats().keptBytes, 0);
    assert.equal(shared.join(job, 's').lookup(0), undefined);
  });

  it('counts the whole buffer a message holds, not only its bytes', () => {
    const shared = new SharedLogMessages({ perJobBytes: 600 * KIB, totalBytes: 1 << 30 });
    const job = {};
    const a = shared.join(job, 's');
    shared.join(job, 's');
    // Tiny messages, each a view into a 256 KiB buffer (as ChunkBatch makes them): two fit, not three.
    const tiny = [0, 1, 2].map(() => {
      const m = message(256 * KIB);
      return { ...m, bytes: m.bytes.subarray(5, 105) };
    });
    tiny.forEach((m, i) => a.offer(i, i + 1, m.bytes, m.release)());
    assert.equal(shared.stats().keptBytes, 512 * KIB);
    assert.equal(tiny[0]!.released(), true, 'the oldest made room');
    assert.equal(a.lookup(0), undefined);
    assert.ok(a.lookup(2) !== undefined);
  });
});
