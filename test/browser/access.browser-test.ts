// Who may make the dashboard act. `job-cli ui` acts with the user's certificate, so it must serve
// only the page it printed the URL of: requests without the token or cookie, for another Host, from
// another Origin, or changes without the page's CSRF token are refused — from a plain HTTP client
// and from a hostile page on another port in the same (signed-in) browser. And a reader's page
// offers no start, stop or remove, while the daemon refuses them anyway when the page's own
// script sends them.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { JobworkerClient, type JobView } from '../../src/client';
import type { TlsFilePaths } from '../../src/pki';
import { launchBrowser, requireChromium, type TestBrowser } from '../helpers/browser';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startUi, writeContexts, type UiProcess } from '../helpers/ui-process';
import { pageRequest } from './page-scripts';

let pki: TestPki;
let dir: string;
let daemon: RunningTestDaemon;
let writer: TlsFilePaths;
let readOnly: TlsFilePaths;
let asWriter: JobworkerClient;
let writerUi: UiProcess;
let readerUi: UiProcess;
let browser: TestBrowser;
let running: JobView;
let finished: JobView;
const homes: string[] = [];

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request with exactly these headers (fetch would not let a test set Host). */
function send(ui: UiProcess, method: string, target: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const url = new URL(target, ui.origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: `${url.pathname}${url.search}`, headers: { host: url.host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (data: string) => (text += data)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The session cookie, as the token URL sets it. */
async function signIn(ui: UiProcess): Promise<string> {
  const answer = await send(ui, 'GET', ui.url, {});
  assert.equal(answer.status, 303);
  assert.equal(answer.headers.location, '/');
  const cookie = answer.headers['set-cookie']?.[0] ?? '';
  assert.match(cookie, /HttpOnly; SameSite=Strict/);
  return cookie.split(';')[0]!;
}

/** Opens the WebSocket with these headers: the HTTP status of a refusal, or the first message. */
function openSocket(ui: UiProcess, headers: Record<string, string>): Promise<{ status: number } | { message: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${ui.origin.replace('http', 'ws')}/api/ws`, { headers });
    socket.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode! });
      res.resume();
    });
    socket.once('message', (data: Buffer) => {
      resolve({ message: data.toString() });
      socket.close();
    });
    socket.once('error', reject);
  });
}

async function jobCount(): Promise<number> {
  return (await asWriter.listAllJobs()).length;
}

describe('who may make job-cli ui act', { ...requireRoot, ...requireChromium }, () => {
  before(async () => {
    pki = await createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-access-'));
    writer = await pki.client({ name: 'wes', roles: ['writer'] });
    // The same identity with only the reader role: it sees wes's jobs and may change none.
    readOnly = await pki.client({ name: 'wes', roles: ['reader'] }, 'wes-read');
    daemon = await startTlsDaemon('ui-access', await pki.server(), dir, mkdtempSync(path.join(dir, 'state-')));
    asWriter = await JobworkerClient.connect({ address: daemon.address, tls: writer });
    running = await asWriter.startJob({ command: 'sleep', args: ['300'] });
    finished = await asWriter.startJob({ command: 'true' });
    for (const [name, tls] of [['writer', writer], ['reader', readOnly]] as const) {
      const home = mkdtempSync(path.join(tmpdir(), `jobworker-ui-${name}-`));
      homes.push(home);
      writeContexts(home, { main: { address: daemon.address, tls } });
    }
    [writerUi, readerUi] = await Promise.all([startUi(homes[0]!), startUi(homes[1]!)]);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await writerUi?.stop();
    await readerUi?.stop();
    asWriter?.close();
    await daemon?.stop();
    pki?.remove();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  it("a reader's page shows the jobs and offers no start, stop or remove; the daemon refuses them from the page's own script", async () => {
    const page = await browser.context.newPage();
    await page.goto(readerUi.url);
    const row = (job: JobView) => page.locator(`tr[data-job="${job.id}"]`);
    await row(running).and(page.locator('[data-state="running"]')).waitFor();
    await row(finished).and(page.locator('[data-state="exited"]')).waitFor();
    assert.equal(await page.locator('table.jobs button').count(), 0, 'no Stop or Remove in the list');
    assert.equal(await page.locator('[data-role="start"]').isVisible(), false, 'no Start');
    await page.goto(`${readerUi.origin}/#/jobs/main/${running.id}`);
    await page.locator('[data-role="state"]', { hasText: 'running' }).waitFor();
    assert.equal(await page.locator('.job-page .actions button').count(), 0, 'no Stop on the job page');
    await page.goto(`${readerUi.origin}/#/start`);
    await page.locator('.start-page p', { hasText: 'writer or admin role' }).waitFor();
    assert.equal(await page.locator('.start-page form').count(), 0);

    const before = await jobCount();
    const start = await page.evaluate<{ status: number; body: { error: string } }>(pageRequest('POST', '/api/hosts/main/jobs', { command: ['true'] }));
    assert.equal(start.status, 403);
    assert.match(start.body.error, /permission denied: wes \(role reader\) may not call StartJob/);
    const stop = await page.evaluate<{ status: number; body: { error: string } }>(pageRequest('POST', `/api/hosts/main/jobs/${running.id}/stop`, {}));
    assert.equal(stop.status, 403);
    assert.match(stop.body.error, /may not call StopJob/);
    const remove = await page.evaluate<{ status: number; body: { error: string } }>(pageRequest('DELETE', `/api/hosts/main/jobs/${finished.id}`, undefined));
    assert.equal(remove.status, 403);
    assert.equal(await jobCount(), before);
    assert.equal((await asWriter.getJob(running.id)).state, 'running');
    await page.close();
  });

  it('refuses every request without the token or the cookie, and a wrong token', async () => {
    for (const target of ['/', '/index.html', '/assets/app.js', '/api/hosts/main/jobs/' + finished.id + '/log']) {
      const answer = await send(writerUi, 'GET', target, {});
      assert.equal(answer.status, 401, target);
      assert.doesNotMatch(answer.body, /csrf|<script/i);
    }
    assert.equal((await send(writerUi, 'GET', '/?token=not-the-token', {})).status, 401);
    assert.equal((await send(writerUi, 'GET', '/', { cookie: `${(await signIn(writerUi)).split('=')[0]}=guess` })).status, 401);
    assert.deepEqual(await openSocket(writerUi, { origin: writerUi.origin }), { status: 401 });
    const before = await jobCount();
    assert.equal((await send(writerUi, 'POST', '/api/hosts/main/jobs', { origin: writerUi.origin, 'content-type': 'application/json' }, '{"command":["true"]}')).status, 401);
    assert.equal(await jobCount(), before);
  });

  it('with the cookie: refuses another Host (DNS rebinding), another Origin, a WebSocket without Origin', async () => {
    const cookie = await signIn(writerUi);
    const page = await send(writerUi, 'GET', '/', { cookie });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /frame-ancestors 'none'/);
    const port = new URL(writerUi.origin).port;
    assert.equal((await send(writerUi, 'GET', '/', { cookie, host: `rebound.example:${port}` })).status, 403);
    assert.equal((await send(writerUi, 'GET', '/', { cookie, origin: 'http://localhost:9999' })).status, 403);
    assert.equal((await send(writerUi, 'GET', `/api/hosts/main/jobs/${finished.id}/log`, { cookie, 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors' })).status, 403);
    assert.deepEqual(await openSocket(writerUi, { cookie, origin: 'http://localhost:9999' }), { status: 403 });
    assert.deepEqual(await openSocket(writerUi, { cookie }), { status: 403 });
    const opened = await openSocket(writerUi, { cookie, origin: writerUi.origin });
    assert.ok('message' in opened && JSON.parse(opened.message).type === 'hosts', 'the same socket with the right cookie and Origin opens');
  });

  it('with the cookie: refuses a change without the CSRF token or from another Origin (a forged request)', async () => {
    const cookie = await signIn(writerUi);
    const csrf = /name="jobworker-csrf" content="([^"]+)"/.exec((await send(writerUi, 'GET', '/', { cookie })).body)![1]!;
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ command: ['true'] });
    const before = await jobCount();
    const forged = [
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { cookie, origin: writerUi.origin, ...json }, body),
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { cookie, origin: writerUi.origin, 'x-jobworker-csrf': 'guess', ...json }, body),
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { cookie, origin: 'http://localhost:9999', 'x-jobworker-csrf': csrf, ...json }, body),
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { cookie, 'x-jobworker-csrf': csrf, ...json }, body),
      await send(writerUi, 'POST', `/api/hosts/main/jobs/${running.id}/stop`, { cookie, origin: writerUi.origin, ...json }, '{}'),
      await send(writerUi, 'DELETE', `/api/hosts/main/jobs/${finished.id}`, { cookie, origin: 'http://localhost:9999', 'x-jobworker-csrf': csrf }),
    ];
    assert.deepEqual(forged.map((answer) => answer.status), [403, 403, 403, 403, 403, 403]);
    assert.equal(await jobCount(), before);
    assert.equal((await asWriter.getJob(running.id)).state, 'running');
    // The same request with all of it is the page's, and goes through (so the refusals above are the guard's).
    const real = await send(writerUi, 'POST', '/api/hosts/main/jobs', { cookie, origin: writerUi.origin, 'x-jobworker-csrf': csrf, ...json }, body);
    assert.equal(real.status, 201, real.body);
    assert.equal(await jobCount(), before + 1);
  });

  it('a hostile page on another port of the same host, in the signed-in browser, cannot make it act', async () => {
    const page = await browser.context.newPage();
    await page.goto(writerUi.url); // signed in: the browser holds the cookie, which other ports get too
    await page.locator('[data-role="link"][data-state="live"]').waitFor();
    const target = writerUi.origin;
    const hostile = `<!doctype html><body><script>
      const results = {};
      const body = JSON.stringify({ command: ['true'] });
      const post = (mode, type) => fetch('${target}/api/hosts/main/jobs', { method: 'POST', mode, credentials: 'include', headers: { 'content-type': type }, body })
        .then((r) => r.status, (e) => 'error: ' + e.message);
      Promise.all([
        post('no-cors', 'text/plain').then((s) => (results.simplePost = s)),
        post('cors', 'application/json').then((s) => (results.jsonPost = s)),
        fetch('${target}/api/hosts/main/jobs/${finished.id}/log', { credentials: 'include' }).then((r) => r.status, (e) => 'error: ' + e.message).then((s) => (results.read = s)),
        new Promise((resolve) => {
          const socket = new WebSocket('${target.replace('http', 'ws')}/api/ws');
          socket.onmessage = () => resolve(results.socket = 'got a message');
          socket.onclose = () => resolve(results.socket = 'closed');
        }),
      ]).then(() => { document.title = 'done'; window.results = results; });
      const form = document.createElement('form');
      form.method = 'POST'; form.action = '${target}/api/hosts/main/jobs'; form.enctype = 'text/plain'; form.target = 'sink';
      const field = document.createElement('input'); field.name = '{"command":["true"],"x":"'; field.value = '"}';
      form.append(field); document.body.append(Object.assign(document.createElement('iframe'), { name: 'sink' }), form); form.submit();
    </script></body>`;
    const server: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(hostile));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const before = await jobCount();
    try {
      const attacker = await browser.context.newPage();
      await attacker.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
      await attacker.waitForFunction("document.title === 'done'", undefined, { timeout: 20_000 });
      const results = await attacker.evaluate<Record<string, unknown>>('window.results');
      // Sent (a "simple" request needs no preflight); its answer is opaque or blocked (CORP): the
      // job count below is what shows it was refused.
      assert.notEqual(results.simplePost, 201);
      assert.match(String(results.jsonPost), /^error/, 'a JSON POST needs CORS, which the server never grants');
      assert.match(String(results.read), /^error/, 'the log cannot be read from another origin');
      assert.equal(results.socket, 'closed', 'the WebSocket is refused for its Origin');
      await attacker.close();
    } finally {
      server.close();
      server.closeAllConnections();
    }
    assert.equal(await jobCount(), before, 'no job was started by the hostile page');
    await page.close();
  });
});
