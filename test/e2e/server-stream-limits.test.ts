// An identity cannot hold more open streams than allowed (each may hold memory while its client
// stops reading); others are not affected, and closing one makes room.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { JobworkerClient, LogMessageView } from '../../src/client';
import { requireRoot } from '../helpers/root';
import { codeOf, startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;
let alice: JobworkerClient;
let bob: JobworkerClient;
let jobId: string;

/** Opens a follow stream and resolves once its first message arrived (the stream is counted). */
async function openFollower(client: JobworkerClient, controller: AbortController): Promise<AsyncIterator<LogMessageView>> {
  const iterator = client.streamLogs({ jobId, follow: true }, controller.signal)[Symbol.asyncIterator]();
  await iterator.next();
  return iterator;
}

describe('streams per identity', requireRoot, () => {
  before(async () => {
    t = await startTestServer('stream-limits', { maxStreamsPerIdentity: 2 });
    alice = await t.client('alice', ['admin']);
    bob = await t.client('bob', ['admin']);
    jobId = (await alice.startJob({ command: 'sh', args: ['-c', 'echo hi; exec sleep 1000'] })).id;
  });
  after(async () => {
    await alice?.stopJob(jobId, { graceMs: 0 }).catch(() => undefined);
    await t?.close();
  });

  it('refuses the stream over the limit with RESOURCE_EXHAUSTED, not others, and frees the slot on close', async () => {
    const first = new AbortController();
    const second = new AbortController();
    await openFollower(alice, first);
    await openFollower(alice, second);
    const third = codeOf((async () => {
      for await (const _ of alice.streamLogs({ jobId, follow: true })) void _;
    })());
    assert.equal(await third, 'RESOURCE_EXHAUSTED');
    // Another identity is not affected.
    const bobs = new AbortController();
    await openFollower(bob, bobs);
    bobs.abort();
    // Closing one of alice's makes room (the server notices the cancel and releases the slot).
    first.abort();
    for (let i = 0; ; i++) {
      const attempt = new AbortController();
      try {
        await openFollower(alice, attempt);
        attempt.abort();
        break;
      } catch (error) {
        assert.ok(i < 100, `the slot was never freed: ${String(error)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    second.abort();
  });
});
