// The dashboard end to end, as a person uses it: `job-cli ui` (the real binary) with contexts for two
// real daemons over mutual TLS and one that does not answer, and a real headless Chromium on the
// URL it prints. The job list follows jobs starting and ending; the start form starts one (and shows
// the daemon's refusal next to the field); stop with a signal and remove work from the job page; a
// 50 MiB output reaches the terminal byte for byte; an OOM-killed job's memory chart reaches its
// limit; a daemon that stops is shown as down while the other keeps working. (The terminal view's
// own behaviour — colours, stderr, search, pause, resume, downloads — is terminal.browser-test.ts.)
//
// JOBWORKER_UI_SCREENSHOTS=DIR also saves the main pages there (docs/ui-*.png are made this way,
// with terminal.browser-test.ts).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Page } from 'playwright-core';

import { ClientError, JobworkerClient, StatusCode } from '../../src/client';
import type { TlsFilePaths } from '../../src/pki';
import { chartSeries, fetchDigest, RECORD_CHUNKS, RECORDED_OUTPUT, RECORDED_SO_FAR } from './page-scripts';
import { launchBrowser, requireChromium, screenshot, SCREENSHOTS, terminalScreenLines, waitForTerminalEnd, type TestBrowser } from '../helpers/browser';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startUi, writeContexts, type UiProcess } from '../helpers/ui-process';

const MiB = 1 << 20;

let pki: TestPki;
let dir: string;
let home: string;
let alpha: RunningTestDaemon;
let beta: RunningTestDaemon;
let admin: TlsFilePaths;
let ui: UiProcess;
let browser: TestBrowser;
let page: Page;
let onAlpha: JobworkerClient;
let onBeta: JobworkerClient;

const row = (host: string, id: string) => page.locator(`table.jobs tr[data-host="${host}"][data-job="${id}"]`);

async function openJobPage(host: string, id: string): Promise<void> {
  await page.goto(`${ui.origin}/#/jobs/${host}/${id}`);
  await page.locator('.job-page .record').waitFor();
}

async function recordedOutput(): Promise<{ sha256: string; bytes: number; gaps: string[]; text: string | null }> {
  return page.evaluate(RECORDED_OUTPUT);
}

const waitForLogEnd = (timeoutMs?: number) => waitForTerminalEnd(page, timeoutMs);
const screenLines = () => terminalScreenLines(page);

describe('job-cli ui in Chromium', { ...requireRoot, ...requireChromium }, () => {
  before(async () => {
    pki = await createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-test-'));
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-home-'));
    admin = await pki.client({ name: 'ada', roles: ['admin'] });
    const server = await pki.server();
    [alpha, beta] = await Promise.all([
      startTlsDaemon('ui-alpha', server, dir, mkdtempSync(path.join(dir, 'state-a-'))),
      startTlsDaemon('ui-beta', server, dir, mkdtempSync(path.join(dir, 'state-b-'))),
    ]);
    // "gone": a context whose daemon does not run (port 1 refuses connections).
    writeContexts(home, { alpha: { address: alpha.address, tls: admin }, beta: { address: beta.address, tls: admin }, gone: { address: 'localhost:1', tls: admin } }, 'alpha');
    onAlpha = await JobworkerClient.connect({ address: alpha.address, tls: admin });
    onBeta = await JobworkerClient.connect({ address: beta.address, tls: admin });
    ui = await startUi(home);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.goto(ui.url);
  });

  after(async () => {
    await browser?.close();
    await ui?.stop();
    onAlpha?.close();
    onBeta?.close();
    await alpha?.stop();
    await beta?.stop().catch(() => undefined); // stopped by a test already
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    for (const daemon of [alpha, beta]) if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  it('opens with the token (which leaves the URL) and shows every daemon: two up, the unreachable one down', async () => {
    assert.equal(new URL(page.url()).search, '', 'the token opens the page and is dropped from the address');
    await page.locator('.host[data-host="alpha"][data-status="up"]').waitFor();
    await page.locator('.host[data-host="beta"][data-status="up"]').waitFor();
    const gone = page.locator('.host[data-host="gone"][data-status="down"]');
    await gone.waitFor();
    assert.match((await gone.getAttribute('title')) ?? '', /cannot connect to the daemon at localhost:1: connect ECONNREFUSED/);
  });

  it('the job list follows a job as it starts and ends, on each daemon', async () => {
    const job = await onBeta.startJob({ command: 'sleep', args: ['300'], name: 'sleeper', labels: { tier: 'back', note: 'two words' } });
    await row('beta', job.id).and(page.locator('[data-state="running"]')).waitFor();
    assert.equal(await row('beta', job.id).locator('[data-col="command"]').textContent(), 'sleep 300');
    assert.equal(await row('beta', job.id).locator('[data-role="name"]').textContent(), 'sleeper');
    assert.equal(await row('beta', job.id).locator('[data-col="name"] .labels').textContent(), "tier=back 'note=two words'");
    assert.equal(await row('beta', job.id).locator('[data-col="owner"]').textContent(), 'ada');
    // Rates come from the UI's own sampling of running jobs.
    await row('beta', job.id).locator('[data-col="memory"]').filter({ hasText: /iB/ }).waitFor();
    const failing = await onAlpha.startJob({ command: 'sh', args: ['-c', 'exit 3'] });
    await row('alpha', failing.id).and(page.locator('[data-state="failed"]')).waitFor();
    assert.equal(await row('alpha', failing.id).locator('[data-col="result"]').textContent(), '3');
    if (SCREENSHOTS !== undefined) {
      // A busier list for the picture: a job using CPU (under a quota) and one with a limit on memory.
      const busy = await onAlpha.startJob({ command: 'sh', args: ['-c', 'while :; do :; done'], limits: { cpu: 0.25 } });
      const build = await onBeta.startJob({ command: 'sh', args: ['-c', 'echo building; sleep 60'], limits: { memoryBytes: 256 * MiB, pids: 64 } });
      await row('alpha', busy.id).locator('[data-col="cpu"]').filter({ hasText: '%' }).waitFor();
      await screenshot(page, 'jobs');
      await Promise.all([onAlpha.stopJob(busy.id, { graceMs: 0 }), onBeta.stopJob(build.id, { graceMs: 0 })]);
    }
    await onBeta.stopJob(job.id, { graceMs: 0 });
    await row('beta', job.id).and(page.locator('[data-state="stopped"]')).waitFor();
    // Filters: by host and state, and by text.
    await page.selectOption('select[name="host"]', 'alpha');
    assert.equal(await row('beta', job.id).count(), 0);
    await page.selectOption('select[name="host"]', '');
    await page.fill('input[name="q"]', 'sleep 300');
    await row('beta', job.id).waitFor();
    assert.equal(await row('alpha', failing.id).count(), 0);
    // A name, a label's key, and key=value words: that label with exactly that value (case-sensitive).
    for (const [text, shown] of [['Sleeper', true], ['tier', true], ['tier=back sleeper', true], ['tier=Back', false], ['note=two', false], ['tier=front', false]] as const) {
      await page.fill('input[name="q"]', text);
      if (shown) await row('beta', job.id).waitFor();
      else await row('beta', job.id).waitFor({ state: 'detached' });
    }
    await page.fill('input[name="q"]', '');
  });

  it('starts a job from the form; a value refused by job-cli\'s parser or the daemon is shown at its field', async () => {
    await page.goto(`${ui.origin}/#/start`);
    await page.selectOption('select[name="host"]', 'alpha');
    await page.fill('input[name="command"]', 'sh');
    await page.fill('textarea[name="args"]', '-c\nprintf "hello from the form: %s\\n" "$GREETING"; echo oops >&2');
    await page.fill('textarea[name="env"]', 'GREETING=hi there');
    await page.fill('input[name="memory"]', '5MB');
    await page.click('button[type="submit"]');
    const error = page.locator('[data-role="form-error"]');
    await error.filter({ hasText: '--memory' }).waitFor();
    assert.match((await error.textContent()) ?? '', /--memory: "MB" is ambiguous/);
    assert.ok(await page.locator('input[data-flag="--memory"].invalid').count());
    // The daemon's own bound (memory at least 1 MiB), named by its flag as job-cli names it.
    await page.fill('input[name="memory"]', '4K');
    await page.click('button[type="submit"]');
    await error.filter({ hasText: /^--memory: (?!"MB" is ambiguous)/ }).waitFor();
    await screenshot(page, 'start');
    await page.fill('input[name="memory"]', '64M');
    await page.fill('input[name="name"]', 'from-the-form');
    await page.fill('textarea[name="label"]', 'tier=front\n\nnote=two words');
    await page.click('button[type="submit"]');
    await page.waitForURL(/#\/jobs\/alpha\/[0-9a-f-]{36}$/);
    const id = page.url().split('/').at(-1)!;
    await page.locator('[data-role="state"]', { hasText: 'exited' }).waitFor();
    await page.locator('[data-field="limits"]', { hasText: 'memory 64 MiB' }).waitFor();
    await page.locator('.xterm-rows', { hasText: 'hello from the form: hi there' }).waitFor();
    await page.locator('.xterm-rows', { hasText: 'oops' }).waitFor();
    const job = await onAlpha.getJob(id);
    assert.equal(job.owner, 'ada');
    assert.equal(job.limits.memoryBytes, 64 * MiB);
    assert.equal(job.name, 'from-the-form');
    assert.deepEqual(job.labels, { tier: 'front', note: 'two words' });
  });

  it('lists a job with a long command line in part, saying how many arguments are left out; its page shows every one, also after a change', async () => {
    // Over 8 KiB of arguments: the daemon lists the job (ListJobs, WatchJobs, StopJob) with the leading ones only.
    const args = Array.from({ length: 200 }, (_, i) => `argument-${String(i).padStart(3, '0')}-${'y'.repeat(48)}`);
    const job = await onAlpha.startJob({ command: 'sh', args: ['-c', 'sleep 300', 'sh', ...args] });
    assert.ok(job.argsOmitted > 0, 'the daemon lists it in part');
    await page.goto(`${ui.origin}/#/`);
    const cell = row('alpha', job.id).locator('[data-col="command"]');
    await cell.waitFor();
    assert.match((await cell.getAttribute('title'))!, new RegExp(` … \\(${job.argsOmitted} more arguments\\)$`));
    await openJobPage('alpha', job.id);
    const command = page.locator('[data-field="command"]');
    await command.filter({ hasText: args.at(-1)! }).waitFor();
    await onAlpha.stopJob(job.id, { graceMs: 0 });
    await page.locator('[data-role="state"]', { hasText: 'stopped' }).waitFor();
    assert.ok((await command.textContent())!.endsWith(args.at(-1)!), "the stop's record (leading arguments only) does not cut the command short");
    await onAlpha.removeJob(job.id);
  });

  it('stops a job with the signal and grace chosen, then removes it', async () => {
    const job = await onAlpha.startJob({ command: 'sleep', args: ['300'] });
    await openJobPage('alpha', job.id);
    await page.locator('[data-role="state"]', { hasText: 'running' }).waitFor();
    await page.click('button.stop');
    await page.selectOption('dialog select[name="signal"]', 'INT');
    await page.fill('dialog input[name="grace"]', '1s');
    await page.click('dialog button[type="submit"]');
    await page.locator('[data-role="state"]', { hasText: 'stopped' }).waitFor();
    assert.equal(await page.locator('[data-field="stopped-by"]').textContent(), 'ada');
    assert.equal(await page.locator('[data-field="signal"]').textContent(), 'SIGINT');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('button.remove');
    await page.waitForURL(/#\/$/);
    await assert.rejects(onAlpha.getJob(job.id), (error) => error instanceof ClientError && error.code === StatusCode.NOT_FOUND);
    assert.equal(await row('alpha', job.id).count(), 0);
  });

  it("shows a 50 MiB output in the terminal byte for byte, and the download is the same bytes", async () => {
    // 524288 lines of 100 bytes, numbered, so a gap or a repeat would change both the hash and the screen.
    const lines = 524_288;
    const line = (n: number) => `line ${String(n).padStart(9, '0')} ${'x'.repeat(84)}\n`;
    const expected = createHash('sha256');
    for (let n = 1; n <= lines; n++) expected.update(line(n));
    const sha256 = expected.digest('hex');
    const job = await onAlpha.startJob({ command: 'seq', args: ['-f', `line %09.0f ${'x'.repeat(84)}`, '1', String(lines)] });
    const started = performance.now();
    await page.goto(`${ui.origin}/#/`);
    await page.evaluate(RECORD_CHUNKS);
    await page.goto(`${ui.origin}/#/jobs/alpha/${job.id}`);
    await waitForLogEnd(240_000);
    const seconds = (performance.now() - started) / 1000;
    const shown = await recordedOutput();
    assert.deepEqual(shown.gaps, []);
    assert.equal(shown.bytes, lines * 100);
    assert.equal(shown.sha256, sha256);
    const screen = await screenLines();
    const last = Array.from({ length: screen.length }, (_, i) => line(lines - screen.length + 1 + i).trimEnd());
    assert.deepEqual(screen, last, 'the screen shows the last lines');
    // The download link: the raw bytes, through the same origin and cookie.
    const href = await page.getAttribute('[data-role="download"]', 'href');
    const download = await page.evaluate<{ bytes: number; sha256: string }>(fetchDigest(href!));
    assert.deepEqual(download, { bytes: lines * 100, sha256 });
    const chunks = await page.evaluate<{ chunks: number }>(RECORDED_SO_FAR);
    process.stderr.write(`# 50 MiB output shown in the terminal in ${seconds.toFixed(1)} s (${(50 / seconds).toFixed(1)} MiB/s), ${chunks.chunks} chunks\n`);
    await onAlpha.removeJob(job.id);
  });

  it("draws an OOM-killed job's memory reaching its limit", async () => {
    const limit = 64 * MiB;
    // Grows by 2 MiB every 50 ms: the page samples it on the way up, the kernel kills it at 64 MiB.
    const program = [
      'import sys, time',
      'held = []',
      'while True:',
      '    held.append(bytearray(2 << 20))',
      '    print(f"\\x1b[32mholding\\x1b[0m {2 * len(held)} MiB", flush=True)',
      '    if len(held) % 8 == 0: print(f"\\x1b[33mwarning:\\x1b[0m {2 * len(held)} MiB and growing", file=sys.stderr, flush=True)',
      '    time.sleep(0.05)',
    ].join('\n');
    const job = await onAlpha.startJob({ command: 'python3', args: ['-c', program], limits: { memoryBytes: limit } });
    await openJobPage('alpha', job.id);
    await page.locator('[data-field="oom"]', { hasText: 'yes' }).waitFor({ timeout: 60_000 });
    await page.locator('.xterm-rows', { hasText: 'MiB and growing' }).waitFor();
    assert.equal(await page.locator('[data-role="state"]').textContent(), 'failed');
    const chart = await page.evaluate<Record<string, (number | null)[]>>(chartSeries('memory'));
    const values = (label: string) => (chart[label] ?? []).filter((value): value is number => value !== null);
    assert.ok(values('time').length >= 2, `at least two points: ${JSON.stringify(chart)}`);
    assert.ok(values('limit').length > 0 && values('limit').every((value) => value === limit), 'the limit is drawn');
    assert.ok(Math.max(...values('peak')) >= 0.9 * limit, `the peak reaches the limit: ${JSON.stringify(chart)}`);
    assert.ok(values('in use').some((value) => value > 4 * MiB), `a live reading on the way up: ${JSON.stringify(chart['in use'])}`);
    await screenshot(page, 'job-oom');
  });

  it('shows a daemon that stops as down; the other keeps working', async () => {
    await page.goto(`${ui.origin}/#/`);
    await beta.stop();
    await page.locator('.host[data-host="beta"][data-status="down"]').waitFor({ timeout: 30_000 });
    const job = await onAlpha.startJob({ command: 'true' });
    await row('alpha', job.id).waitFor();
  });
});
