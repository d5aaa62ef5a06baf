// The dashboard over a fleet (docs/fleet.md): a real nats-server -js with mutual TLS and two daemons
// (w1, w2) serving the pool "batch", one context for each in `job-cli ui`, and a real headless
// Chromium. Every daemon of a fleet lists every pool job, so the page must show each pool job once
// (as the daemon that runs it answers), say where it is (queued, or on which daemon), and offer Stop
// for a queued job, which the daemon asked takes out of the queue.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Page } from 'playwright-core';

import { JobworkerClient, type JobView } from '../../src/client';
import { createCa, issueNatsClientCertificate, type TlsFilePaths } from '../../src/pki';
import { launchBrowser, requireChromium, type TestBrowser } from '../helpers/browser';
import { leftoverCgroups } from '../helpers/cli-daemon';
import { startFleetMember } from '../helpers/fleet-member';
import { NatsServer, natsServerVersion } from '../helpers/nats-server';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import type { SpawnedDaemon } from '../helpers/spawned-daemon';
import { startUi, writeContexts, type UiProcess } from '../helpers/ui-process';

const HOSTS = ['w1', 'w2'] as const;
const POOL = 'batch';

let dir: string;
let home: string;
let users: TestPki;
let fleetPki: TestPki;
let nats: NatsServer;
const daemons: { host: string; cgroupRootName: string; daemon: SpawnedDaemon }[] = [];
let clients: JobworkerClient[] = [];
let ui: UiProcess;
let browser: TestBrowser;
let page: Page;

const rowsOf = (id: string) => page.locator(`table.jobs tr[data-job="${id}"]`);

/** Waits (watching through both daemons) until each shows the job in a state `done` accepts; answers the runner's view. */
async function listedByBoth(id: string, done: (job: JobView) => boolean): Promise<JobView> {
  await Promise.all(
    clients.map(async (client) => {
      // WatchJobs with a job id ends once the job is final; its first message is the current status.
      for await (const change of client.watchJobs({ jobId: id })) if (done(change.job)) return;
      throw new Error(`job ${id} ended without reaching the awaited state`);
    }),
  );
  const views = await Promise.all(clients.map((client) => client.getJob(id)));
  return views.find((view) => view.stats !== null && view.pool?.runnerHost !== null) ?? views[0]!;
}

describe('job-cli ui over a fleet of two daemons', { ...requireRoot, ...requireChromium }, () => {
  before(async () => {
    assert.ok(natsServerVersion() !== null, 'nats-server is not installed: apt-get install nats-server (.ci/run does)');
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-fleet-'));
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-fleet-home-'));
    users = await createTestPki();
    fleetPki = await createTestPki(await createCa({ commonName: 'jobworker ui fleet test CA' }));
    const serverTls = await users.server();
    nats = await NatsServer.start({ dir, tls: await fleetPki.server(), users: HOSTS.map((host) => `CN=${host}`) });
    for (const host of HOSTS) {
      const natsTls = await fleetPki.write(await issueNatsClientCertificate(fleetPki.ca, { name: host }), `nats-${host}`);
      const cgroupRootName = `jobworker-test-${process.pid}-ui-fleet-${host}`;
      const daemon = startFleetMember({
        host,
        stateDir: mkdtempSync(path.join(dir, `state-${host}-`)),
        cgroupRootName,
        configDir: dir,
        serverTls,
        natsTls,
        natsUrl: nats.url,
        pool: POOL,
        capacityJobs: 4,
        heartbeatTtlMs: 3000,
      });
      daemons.push({ host, cgroupRootName, daemon });
    }
    const admin: TlsFilePaths = await users.client({ name: 'ops', roles: ['admin'] });
    const ports = await Promise.all(daemons.map(({ daemon }) => daemon.port()));
    // Contexts named as the daemons' fleet hosts, at the addresses they advertise (localhost:PORT).
    writeContexts(home, Object.fromEntries(HOSTS.map((host, i) => [host, { address: `localhost:${ports[i]}`, tls: admin }])), 'w1');
    clients = await Promise.all(ports.map((port) => JobworkerClient.connect({ address: `localhost:${port}`, tls: admin })));
    ui = await startUi(home);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.goto(ui.url);
    for (const host of HOSTS) await page.locator(`.host[data-host="${host}"][data-status="up"]`).waitFor();
  });

  after(async () => {
    await browser?.close();
    await ui?.stop();
    for (const client of clients) client.close();
    await Promise.all(daemons.map(({ daemon }) => daemon.stop()));
    await nats?.stop();
    for (const { host, cgroupRootName } of daemons) assert.deepEqual(leftoverCgroups(cgroupRootName), [], `cgroups of ${host} left behind`);
    users?.remove();
    fleetPki?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    if (home !== undefined) rmSync(home, { recursive: true, force: true });
  });

  it('a queued pool job is one row (both daemons list it), shown as queued in its pool, and Stop takes it out of the queue', async () => {
    // 2 GiB fits neither daemon (1 GiB each): it stays queued until stopped.
    const job = await clients[0]!.startJob({ command: 'true', args: [], pool: POOL, limits: { memoryBytes: 2 * 1024 ** 3 } });
    await listedByBoth(job.id, (view) => view.state === 'queued');
    // Filtered to w2's jobs: the row is there, once, as w1 (the first context) answers, w2 listing it too.
    await page.goto(`${ui.origin}/#/?host=w2&state=queued`);
    const row = page.locator(`table.jobs tr[data-job="${job.id}"][data-host="w1"]`);
    await row.waitFor();
    assert.equal(await rowsOf(job.id).count(), 1);
    assert.equal(await row.locator('.state').textContent(), 'queued');
    assert.equal(await row.locator('td[data-col="host"] .pool').textContent(), `pool ${POOL} · queued`);
    assert.match((await row.locator('td[data-col="host"]').getAttribute('title')) ?? '', /w2 lists it too/);
    await row.locator('button.stop').click();
    await page.click('dialog button[type="submit"]');
    await page.goto(`${ui.origin}/#/?state=stopped`);
    await page.locator(`table.jobs tr[data-job="${job.id}"][data-state="stopped"]`).waitFor();
    assert.match((await clients[1]!.getJob(job.id)).outcome.reason ?? '', /while queued/);
  });

  it('a pool job that ran is one row, as the daemon that ran it answers, naming that daemon; its page shows the pool and its output', async () => {
    const job = await clients[0]!.startJob({ command: 'sh', args: ['-c', 'echo hello from the pool'], pool: POOL, env: { PATH: '/usr/bin:/bin' } });
    const ran = await listedByBoth(job.id, (view) => view.state === 'exited');
    const runner = ran.pool!.runnerHost!;
    const other = HOSTS.find((host) => host !== runner)!;
    await page.goto(`${ui.origin}/#/?host=${other}`);
    const row = page.locator(`table.jobs tr[data-job="${job.id}"][data-host="${runner}"][data-state="exited"]`);
    await row.waitFor();
    assert.equal(await rowsOf(job.id).count(), 1);
    assert.equal(await row.locator('td[data-col="host"] .pool').textContent(), `pool ${POOL} · on ${runner}`);
    await row.locator('td[data-col="id"] a').click();
    await page.locator('[data-field="pool"]', { hasText: `${POOL}, on ${runner} (localhost:` }).waitFor();
    await page.locator('.xterm-rows', { hasText: 'hello from the pool' }).waitFor();
  });
});
