// SpawnSlots: an identity's spawns in flight are capped; the rest wait their turn, in order, and
// other identities are not held up by it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SpawnSlots } from '../../src/worker/spawn-slots';

/** Whether `promise` has settled by the time the microtasks queued now have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('spawn slots', () => {
  it('two at once per identity; the third waits for a release; others are not held up', async () => {
    const slots = new SpawnSlots(2);
    const first = await slots.acquire('mallory');
    await slots.acquire('mallory');
    const third = slots.acquire('mallory');
    const fourth = slots.acquire('mallory');
    assert.equal(await settled(third), false);
    assert.equal(await settled(slots.acquire('alice')), true, 'another identity gets its own');
    first();
    first(); // a second call gives nothing back twice
    assert.equal(await settled(third), true);
    assert.equal(await settled(fourth), false, 'one release, one turn');
    (await third)();
    assert.equal(await settled(fourth), true);
  });

  it('waiters are served in the order they came', async () => {
    const slots = new SpawnSlots(1);
    const release = await slots.acquire('mallory');
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) => slots.acquire('mallory').then((done) => (order.push(n), done)));
    release();
    for (const waiter of waiters) (await waiter)();
    assert.deepEqual(order, [1, 2, 3]);
    // All released: a new caller gets a slot at once.
    assert.equal(await settled(slots.acquire('mallory')), true);
  });
});
