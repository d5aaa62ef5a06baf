import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';

import { HeapReserveReleaser } from '../../src/server/heap-reserve';

const MiB = 1 << 20;

/** Grows the heap by ~150 MiB of objects, then drops them: the state a burst of work leaves. */
function burst(): void {
  let keep: object[] | null = [];
  for (let i = 0; i < 400_000; i++) keep.push({ id: `${'x'.repeat(40)}${i}`, a: [i, i + 1], b: { c: i } });
  assert.ok(process.memoryUsage().heapTotal > 100 * MiB, 'the burst grew the heap');
  keep = null;
}

describe('HeapReserveReleaser', () => {
  it('gives a heap grown in a burst back once the process is idle, and only then', async () => {
    await nextTurn(); // event loop utilization is measured from the loop's first turn on
    const released: number[] = [];
    const releaser = new HeapReserveReleaser({ intervalMs: 3_600_000, onRelease: (before, after) => released.push(before.heapTotal - after.heapTotal) });
    try {
      burst();
      // The burst kept the main thread busy for the whole interval: a busy process is left alone.
      assert.equal(releaser.check(), false);
      const grown = process.memoryUsage().heapTotal;
      // Idle time is the condition under test here, not something to await.
      await delay(500);
      assert.equal(releaser.check(), true);
      const after = process.memoryUsage().heapTotal;
      assert.ok(grown - after > 64 * MiB, `heap ${Math.round(grown / MiB)} → ${Math.round(after / MiB)} MiB`);
      assert.equal(released.length, 1);
      // Back at its baseline: nothing more to give, no further collection.
      await delay(500);
      assert.equal(releaser.check(), false);
    } finally {
      releaser.stop();
    }
  });

  it('leaves a heap that has not grown alone, however idle', async () => {
    const releaser = new HeapReserveReleaser({ intervalMs: 3_600_000 });
    try {
      await delay(200);
      assert.equal(releaser.check(), false);
    } finally {
      releaser.stop();
    }
  });
});
