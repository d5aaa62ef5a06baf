// LeftoverCgroups: a finished job's cgroup whose processes outlived the kill is retried, less and
// less often, until it can be removed; only then is what the job held released. A process stuck in
// uninterruptible sleep cannot be made on demand, so the cgroup here is a stand-in whose destroy()
// fails as the real one does ("processes still in …") until the test lets its processes go.
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { CgroupStats, JobCgroup } from '../../src/cgroup';
import { JobworkerError } from '../../src/errors';
import { LeftoverCgroups } from '../../src/worker/leftover-cgroups';

class StuckCgroup extends EventEmitter implements JobCgroup {
  readonly id = 'job-1';
  readonly path = '/sys/fs/cgroup/test/job-1';
  stuck = true;
  destroyCalls = 0;
  removed = false;
  stats(): Promise<CgroupStats> {
    throw new Error('not used');
  }
  signalAll(): Promise<number> {
    return Promise.resolve(0);
  }
  kill(): Promise<void> {
    return Promise.resolve();
  }
  waitEmpty(): Promise<boolean> {
    return Promise.resolve(!this.stuck);
  }
  destroy(): Promise<void> {
    this.destroyCalls++;
    this.emit('destroy');
    if (this.stuck) return Promise.reject(new JobworkerError('unavailable', `job ${this.id}: processes still in ${this.path} 10 s after kill (stuck in uninterruptible sleep?); not removed`));
    this.removed = true;
    return Promise.resolve();
  }
}

describe('leftover cgroups', () => {
  // Its timers are unref'd (an idle worker does not stay up for them): hold the test's loop open.
  let keepAlive: NodeJS.Timeout;
  beforeEach(() => {
    keepAlive = setInterval(() => undefined, 1_000);
  });
  afterEach(() => clearInterval(keepAlive));

  it('retries until the processes are gone, then removes the cgroup and releases, once', async () => {
    const warnings: string[] = [];
    const leftovers = new LeftoverCgroups({ warn: (message) => warnings.push(message), firstRetryMs: 5, maxRetryMs: 20 });
    const cgroup = new StuckCgroup();
    let released = 0;
    const releasedNow = new Promise<void>((resolve) => {
      leftovers.adopt('job-1', cgroup, async () => {
        released++;
        resolve();
      });
    });
    leftovers.adopt('job-1', cgroup, () => Promise.reject(new Error('adopted twice'))); // ignored
    assert.deepEqual(leftovers.jobIds, ['job-1']);
    while (cgroup.destroyCalls < 3) await once(cgroup, 'destroy');
    assert.equal(released, 0, 'nothing is released while the processes are there');
    assert.match(warnings[0]!, /processes of a finished job are still there; trying again later/);
    cgroup.stuck = false; // the kernel lets them go
    await releasedNow;
    assert.equal(cgroup.removed, true);
    assert.equal(released, 1);
    assert.deepEqual(leftovers.jobIds, []);
    assert.match(warnings.at(-1)!, /the processes a finished job left are gone/);
    leftovers.close();
  });

  it('backs off: each retry comes twice as late as the one before, up to the most', async () => {
    const leftovers = new LeftoverCgroups({ warn: () => undefined, firstRetryMs: 10, maxRetryMs: 40 });
    const cgroup = new StuckCgroup();
    const at: number[] = [];
    cgroup.on('destroy', () => at.push(performance.now()));
    leftovers.adopt('job-1', cgroup, () => Promise.resolve());
    while (at.length < 5) await once(cgroup, 'destroy');
    leftovers.close();
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // 20, 40, 40, 40 ms after the first (timers fire late, never early).
    assert.ok(gaps[0]! >= 19 && gaps[1]! >= 39 && gaps[2]! >= 39, JSON.stringify(gaps));
    assert.ok(gaps[3]! < 400, `capped: ${JSON.stringify(gaps)}`);
  });

  it('close() stops the retries (the next open sweeps what is left)', async () => {
    const leftovers = new LeftoverCgroups({ warn: () => undefined, firstRetryMs: 5 });
    const cgroup = new StuckCgroup();
    leftovers.adopt('job-1', cgroup, () => Promise.reject(new Error('released after close')));
    await once(cgroup, 'destroy');
    leftovers.close();
    const calls = cgroup.destroyCalls;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(cgroup.destroyCalls, calls);
    assert.deepEqual(leftovers.jobIds, []);
    leftovers.adopt('job-2', cgroup, () => Promise.resolve()); // refused once closed
    assert.deepEqual(leftovers.jobIds, []);
  });
});
