// An identity cannot hold more open streams than allowed (each may hold memory while its client
// stops reading); others are not affected, and closing one makes room.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ClientError, type JobworkerClient, type LogMessageView } from '../../src/client';
import { openFileCount } from '../../src/server/fd-budget';
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

describe('log streams within the fd budget', requireRoot, () => {
  it("one identity's log streams stop at its share of the fd budget, saying so; another identity's stream still opens", async () => {
    // A budget of ~60 fds (what is open now is kept for the daemon), a tenth of it per identity's streams.
    const fdServer = await startTestServer('stream-fd-share', { server: { fileDescriptors: { limit: openFileCount() + 60, reserve: 0, identityStreamShare: 0.1 } } });
    const open: AbortController[] = [];
    try {
      const eve = await fdServer.client('eve', ['admin']);
      const carol = await fdServer.client('carol', ['admin']);
      const job = (await eve.startJob({ command: 'sh', args: ['-c', 'echo hi; exec sleep 1000'] })).id;
      const follow = async (client: JobworkerClient, controller: AbortController): Promise<void> => {
        await client.streamLogs({ jobId: job, follow: true }, controller.signal)[Symbol.asyncIterator]().next();
      };
      let refusal: ClientError | undefined;
      for (let i = 0; i < 40 && refusal === undefined; i++) {
        const controller = new AbortController();
        try {
          await follow(eve, controller);
          open.push(controller);
        } catch (error) {
          assert.ok(error instanceof ClientError, String(error));
          refusal = error;
        }
      }
      assert.ok(refusal !== undefined, 'eve was never refused');
      assert.equal(refusal.codeName, 'RESOURCE_EXHAUSTED');
      assert.match(refusal.details, new RegExp(`^eve has ${open.length} log streams open, the most one identity may hold within the daemon's file descriptor budget \\(10% of \\d+ fds, 1 per log stream; fileDescriptors\\.identityStreamShare\\)$`));
      assert.ok(open.length >= 3 && open.length <= 8, `${open.length} streams admitted`);
      const carols = new AbortController();
      await follow(carol, carols);
      carols.abort();
      await eve.stopJob(job, { graceMs: 0 });
    } finally {
      for (const controller of open) controller.abort();
      await fdServer.close();
    }
  });
});
