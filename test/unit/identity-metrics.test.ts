// Per-identity metrics stay bounded: only the identities nearest a quota get series of their own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { closestToQuota } from '../../src/server/metrics';
import type { QuotaUsage } from '../../src/worker';

function fakeWorker(usages: Record<string, Partial<QuotaUsage>>) {
  return {
    activeIdentities: () => Object.keys(usages),
    quotaUsage: (identity: string): QuotaUsage => ({ runningJobs: 0, maxRunningJobs: 100, logBytes: 0, maxLogBytes: 1000, ...usages[identity] }),
  };
}

describe('metrics per identity', () => {
  it('the identities nearest one of their quotas, nearest first, at most `count`', () => {
    const usages: Record<string, Partial<QuotaUsage>> = {};
    for (let i = 0; i < 1000; i++) usages[`id-${i}`] = { runningJobs: i % 50, logBytes: i % 900 };
    usages['near-logs'] = { logBytes: 990 };
    usages['near-jobs'] = { runningJobs: 99 };
    const top = closestToQuota(fakeWorker(usages), 20);
    assert.equal(top.length, 20);
    assert.deepEqual(top.slice(0, 2), ['near-jobs', 'near-logs']);
    assert.deepEqual(closestToQuota(fakeWorker({}), 20), []);
    assert.deepEqual(closestToQuota(fakeWorker(usages), 0), []);
  });
});
