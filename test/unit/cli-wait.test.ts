// `job-cli wait` watches at most a few jobs at once (each watch is a stream the daemon bounds).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { runLimited } from '../../src/cli/job-cli/wait';

describe('runLimited', () => {
  it('never runs more than the limit at once, starts them in order and keeps the results in order', async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const releases: (() => void)[] = [];
    const tasks = Array.from({ length: 7 }, (_, i) => async () => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => releases.push(resolve));
      running--;
      return i * 10;
    });
    const results = runLimited(tasks, 3);
    await Promise.resolve();
    assert.deepEqual(started, [0, 1, 2]);
    // Finish them last-started first: the queue still starts the rest in order.
    while (releases.length > 0) {
      releases.pop()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(await Promise.all(results), [0, 10, 20, 30, 40, 50, 60]);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(most, 3);
  });

  it('a failed task frees its slot, and its promise rejects', async () => {
    const results = runLimited([() => Promise.reject(new Error('no such job')), () => Promise.resolve('next')], 1);
    await assert.rejects(results[0]!, /no such job/);
    assert.equal(await results[1], 'next');
  });
});
