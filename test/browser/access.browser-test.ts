// Who may make the dashboard act. `job-cli ui` acts with the user's certificate, so it must serve
// only the page it printed the URL of: API requests and the WebSocket without the page's session,
// for another Host, from another Origin, are refused — from a plain HTTP client and from a hostile
// page on another port in the same (signed-in) browser, which gets no credential at all (there is no
// cookie: cookies ignore ports). And a reader's page offers no start, stop or remove, while the
// daemon refuses them anyway when the page's own script sends them.
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

/** The session, as the page opened with the token gets it (written into the page, never a cookie). */
async function signIn(ui: UiProcess): Promise<string> {
  const answer = await send(ui, 'GET', ui.url, {});
  assert.equal(answer.status, 200);
  assert.equal(answer.headers['set-cookie'], undefined, 'no cookie');
  assert.equal(answer.headers['cache-control'], 'no-store');
  return /name="jobworker-session" content="([^"]+)"/.exec(answer.body)![1]!;
}

const sessionHeader = (session: string) => ({ 'x-jobworker-session': session });
const socketSession = (session: string) => ({ 'sec-websocket-protocol': `jobworker, jobworker-session.${session}` });

/** Opens the WebSocket with these headers: the HTTP status of a refusal, or the first message. */
function openSocket(ui: UiProcess, headers: Record<string, string>): Promise<{ status: number } | { message: string }> {
  return new Promise((resolve, reject) => {
    // The subprotocols (the session's) as a browser offers them, so that the client expects the answer.
    const { 'sec-websocket-protocol': offered, ...rest } = headers;
    const protocols = offered === undefined ? [] : offered.split(',').map((protocol) => protocol.trim());
    const socket = new WebSocket(`${ui.origin.replace('http', 'ws')}/api/ws`, protocols, { headers: rest });
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

  it('serves the page shell to anyone (it holds no secret); refuses the API and the WebSocket without the session, with a wrong one, or with a wrong token', async () => {
    const session = await signIn(writerUi);
    for (const target of ['/', '/index.html']) {
      const answer = await send(writerUi, 'GET', target, {});
      assert.equal(answer.status, 200, target);
      assert.match(answer.body, /name="jobworker-session" content=""/);
      assert.ok(!answer.body.includes(session), 'the session is only in the page opened with the token');
    }
    const log = `/api/hosts/main/jobs/${finished.id}/log`;
    assert.equal((await send(writerUi, 'GET', log, {})).status, 401);
    assert.equal((await send(writerUi, 'GET', log, sessionHeader('guess'))).status, 401);
    assert.equal((await send(writerUi, 'GET', log, { cookie: `jobworker-ui-${new URL(writerUi.origin).port}=${session}` })).status, 401, 'a cookie is no credential');
    assert.equal((await send(writerUi, 'GET', '/?token=not-the-token', {})).status, 401);
    assert.deepEqual(await openSocket(writerUi, { origin: writerUi.origin }), { status: 401 });
    assert.deepEqual(await openSocket(writerUi, { origin: writerUi.origin, ...socketSession('guess') }), { status: 401 });
    const before = await jobCount();
    assert.equal((await send(writerUi, 'POST', '/api/hosts/main/jobs', { origin: writerUi.origin, 'content-type': 'application/json' }, '{"command":["true"]}')).status, 401);
    assert.equal(await jobCount(), before);
  });

  it('with the session: refuses another Host (DNS rebinding), another Origin, a WebSocket without Origin', async () => {
    const session = await signIn(writerUi);
    const page = await send(writerUi, 'GET', '/', {});
    assert.match(String(page.headers['content-security-policy']), /frame-ancestors 'none'/);
    const port = new URL(writerUi.origin).port;
    const log = `/api/hosts/main/jobs/${finished.id}/log`;
    assert.equal((await send(writerUi, 'GET', log, sessionHeader(session))).status, 200);
    assert.equal((await send(writerUi, 'GET', log, { ...sessionHeader(session), host: `rebound.example:${port}` })).status, 403);
    assert.equal((await send(writerUi, 'GET', log, { ...sessionHeader(session), origin: 'http://localhost:9999' })).status, 403);
    assert.equal((await send(writerUi, 'GET', log, { ...sessionHeader(session), 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors' })).status, 403);
    assert.deepEqual(await openSocket(writerUi, { ...socketSession(session), origin: 'http://localhost:9999' }), { status: 403 });
    assert.deepEqual(await openSocket(writerUi, socketSession(session)), { status: 403 });
    const opened = await openSocket(writerUi, { ...socketSession(session), origin: writerUi.origin });
    assert.ok('message' in opened && JSON.parse(opened.message).type === 'hosts', 'the same socket with the session and the Origin opens');
  });

  it('with the session: refuses a change without it or from another Origin (a forged request)', async () => {
    const session = await signIn(writerUi);
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ command: ['true'] });
    const before = await jobCount();
    const forged = [
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { origin: writerUi.origin, ...json }, body),
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { origin: writerUi.origin, ...sessionHeader('guess'), ...json }, body),
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { origin: 'http://localhost:9999', ...sessionHeader(session), ...json }, body),
      await send(writerUi, 'POST', '/api/hosts/main/jobs', { ...sessionHeader(session), ...json }, body),
      await send(writerUi, 'POST', `/api/hosts/main/jobs/${running.id}/stop`, { origin: writerUi.origin, ...json }, '{}'),
      await send(writerUi, 'DELETE', `/api/hosts/main/jobs/${finished.id}`, { origin: 'http://localhost:9999', ...sessionHeader(session) }),
    ];
    assert.deepEqual(forged.map((answer) => answer.status), [401, 401, 403, 403, 401, 403]);
    assert.equal(await jobCount(), before);
    assert.equal((await asWriter.getJob(running.id)).state, 'running');
    // The same request with all of it is the page's, and goes through (so the refusals above are the guard's).
    const real = await send(writerUi, 'POST', '/api/hosts/main/jobs', { origin: writerUi.origin, ...sessionHeader(session), ...json }, body);
    assert.equal(real.status, 201, real.body);
    assert.equal(await jobCount(), before + 1);
  });

  it('a hostile page on another port of the same host, in the signed-in browser, cannot make it act', async () => {
    const page = await browser.context.newPage();
    await page.goto(writerUi.url); // signed in: the page keeps its session where only its origin reads it
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
    // What the browser sends the hostile server: with a cookie session, the UI's cookie went along
    // (cookies ignore ports), and with it a non-browser client could act as the user.
    const cookiesSeen: string[] = [];
    const server: Server = createServer((req, res) => {
      if (req.headers.cookie !== undefined) cookiesSeen.push(req.headers.cookie);
      res.writeHead(200, { 'content-type': 'text/html' }).end(hostile);
    });
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
    assert.deepEqual(cookiesSeen, [], 'the browser gave the hostile server no credential of the UI');
    await page.close();
  });
});
