import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';

import { fullGarbageCollection, IdleMemoryReleaser, releaseReason, type MemoryFigures } from '../../src/daemon/idle-memory';

const MiB = 1 << 20;
const mib = (bytes: number) => `${Math.round(bytes / MiB)} MiB`;
const at = (rssMiB: number, heapTotalMiB: number, heapUsedMiB: number): MemoryFigures => ({ rss: rssMiB * MiB, heapTotal: heapTotalMiB * MiB, heapUsed: heapUsedMiB * MiB });

/** Grows the JS heap by ~150 MiB of objects, then drops them. */
function heapBurst(): void {
  let keep: object[] | null = [];
  for (let i = 0; i < 400_000; i++) keep.push({ id: `${'x'.repeat(40)}${i}`, a: [i, i + 1], b: { c: i } });
  assert.ok(process.memoryUsage().heapTotal > 100 * MiB, 'the burst grew the heap');
  keep = null;
}

/**
 * 500 MiB of 256 KiB Buffers (the size of StreamLogs messages) with small long-lived ones between
 * them, then drops the big ones: glibc keeps their memory in its heap, as after a burst of streams.
 */
function bufferBurst(): Buffer[] {
  // Freeing one mmap'd 256 KiB chunk raises glibc's mmap threshold, as a daemon's first streams do.
  Buffer.allocUnsafeSlow(256 << 10).fill(0);
  fullGarbageCollection();
  let big: Buffer[] | null = [];
  const small: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    big.push(Buffer.allocUnsafeSlow(256 << 10).fill(1));
    if (i % 4 === 0) small.push(Buffer.allocUnsafeSlow(64).fill(1));
  }
  assert.ok(process.memoryUsage().rss > 500 * MiB, 'the burst grew the RSS');
  big = null;
  return small;
}

/**
 * Checks every 250 ms until a check finds the process idle and starts a release (V8 may still be
 * finishing the burst's GC work on the main thread for a while); false if none did within 10 s.
 * Idle time is the condition under test here, not something an event could signal.
 */
async function checkUntilReleasing(releaser: IdleMemoryReleaser): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    await delay(250);
    if (releaser.check()) return true;
  }
  return false;
}

/** A releaser checked by hand, and its next release as a promise. */
function manualReleaser(): { releaser: IdleMemoryReleaser; released: Promise<[MemoryFigures, MemoryFigures, string]> } {
  let resolve!: (value: [MemoryFigures, MemoryFigures, string]) => void;
  const released = new Promise<[MemoryFigures, MemoryFigures, string]>((r) => (resolve = r));
  const releaser = new IdleMemoryReleaser({ intervalMs: 3_600_000, onRelease: (before, after, reason) => resolve([before, after, reason]) });
  return { releaser, released };
}

describe('releaseReason', () => {
  it('releases what V8 collected but kept, growth of the heap, and growth of the C heap', () => {
    const start = at(90, 20, 15);
    // After 20,000 jobs (measured): 128.7 MiB of heap for 25.1 MiB live.
    assert.equal(releaseReason(at(210, 129, 25), start), 'heap reserve');
    // Grown and full (live or garbage not yet collected: only a GC tells).
    assert.equal(releaseReason(at(230, 160, 150), start), 'heap growth');
    // 250 stalled streams' buffers, freed but kept by malloc.
    assert.equal(releaseReason(at(950, 22, 16), start), 'rss growth');
  });

  it('leaves small changes alone, and does not repeat a release that freed nothing', () => {
    const start = at(90, 20, 15);
    assert.equal(releaseReason(at(140, 60, 20), start), null);
    // A large live heap after a release: V8's slack after a full GC is not a new reserve.
    const afterRelease = at(1300, 1100, 1000);
    assert.equal(releaseReason(at(1300, 1100, 1000), afterRelease), null);
    assert.equal(releaseReason(at(1310, 1120, 1030), afterRelease), null);
    // Once most of it is garbage that V8 collected: released again.
    assert.equal(releaseReason(at(1300, 1100, 200), afterRelease), 'heap reserve');
  });
});

describe('IdleMemoryReleaser', () => {
  it('leaves a busy process alone; a heap grown in a burst is back within 10 s of idleness', async () => {
    await nextTurn(); // event loop utilization is measured from the loop's first turn on
    const { releaser, released } = manualReleaser();
    try {
      const start = process.memoryUsage().heapTotal;
      heapBurst();
      // The burst kept the main thread busy for the whole interval: a busy process is left alone.
      assert.equal(releaser.check(), false);
      // V8 sometimes shrinks such a heap itself within seconds, sometimes never: then we do.
      if (await checkUntilReleasing(releaser)) await released;
      const end = process.memoryUsage().heapTotal;
      assert.ok(end < start + 64 * MiB, `heap ${mib(start)} → ${mib(end)} after the burst`);
    } finally {
      releaser.stop();
    }
  });

  it('gives freed Buffers back from the C heap (malloc_trim)', async () => {
    await nextTurn();
    const { releaser, released } = manualReleaser();
    try {
      const kept = bufferBurst();
      assert.equal(releaser.check(), false, 'busy');
      assert.equal(await checkUntilReleasing(releaser), true);
      const [before, after, reason] = await released;
      assert.equal(reason, 'rss growth');
      assert.ok(before.rss - after.rss > 256 * MiB, `RSS ${mib(before.rss)} → ${mib(after.rss)}`);
      assert.equal(kept.length, 500);
      // Nothing more to give: no further release.
      assert.equal(releaser.check(), false);
    } finally {
      releaser.stop();
    }
  });

  it('leaves memory that has not grown alone, however idle', async () => {
    await nextTurn();
    const { releaser } = manualReleaser();
    try {
      await delay(200);
      assert.equal(releaser.check(), false);
    } finally {
      releaser.stop();
    }
  });
});
