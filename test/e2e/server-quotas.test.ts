// Quotas over the wire (real server, mTLS): a start beyond an identity's quota answers
// RESOURCE_EXHAUSTED naming the identity, the quota, its value and the remedy, while another identity
// starts; GetIdentityUsage shows usage against limits; the metrics carry per-identity series
// (bounded) and refusals by quota.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ClientError, type JobworkerClient } from '../../src/client';
import { requireRoot } from '../helpers/root';
import { startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;
let alice: JobworkerClient;
let bob: JobworkerClient;

describe('identity quotas over gRPC', requireRoot, () => {
  before(async () => {
    t = await startTestServer('quotas', { worker: { identityLimits: { maxRunningJobs: 1, pids: 64, memoryBytes: 256 << 20 } } });
    alice = await t.client('alice', ['writer']);
    bob = await t.client('bob', ['writer']);
  });
  after(async () => {
    await t?.close();
  });

  it('RESOURCE_EXHAUSTED names the identity, the quota, its value and how to free it; another identity starts', async () => {
    const running = await alice.startJob({ command: 'sleep', args: ['1000'] });
    await assert.rejects(alice.startJob({ command: 'true' }), (error: unknown) =>
      error instanceof ClientError && error.codeName === 'RESOURCE_EXHAUSTED' &&
      error.details === 'identity "alice" is at its maxRunningJobs quota: 1 of 1 (identityLimits.maxRunningJobs); stop one of its jobs (job-cli stop ID) or wait for one to end');
    const other = await bob.startJob({ command: 'true' });
    assert.equal(other.owner, 'bob');

    const usage = await alice.getIdentityUsage();
    assert.equal(usage.slice, 'identity.alice');
    assert.equal(usage.runningJobs, 1);
    assert.equal(usage.maxRunningJobs, 1);
    assert.equal(usage.limits.pids, 64);
    assert.equal(usage.limits.memoryBytes, 256 << 20);
    assert.ok(usage.stats !== null && usage.stats.pidsCurrent >= 1, 'the slice counts the running job\'s process');
    assert.ok(usage.maxLogBytes > 0);

    const text = await t.server.metrics.registry.metrics();
    assert.match(text, /jobworker_quota_refusals_total\{quota="maxRunningJobs"\} 1/);
    assert.match(text, /jobworker_identity_usage\{identity="alice",resource="running_jobs"\} 1/);
    assert.match(text, /jobworker_identity_limit\{identity="alice",resource="running_jobs"\} 1/);
    assert.match(text, /jobworker_identity_limit\{identity="alice",resource="pids"\} 64/);
    assert.match(text, /jobworker_identities_active \d+/);
    await alice.stopJob(running.id, { graceMs: 0 });
    assert.equal((await alice.getIdentityUsage()).runningJobs, 0);
  });
});
