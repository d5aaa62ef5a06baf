// The job page's terminal view in a real headless Chromium, against a real daemon over mutual TLS
// through `job-cli ui`: what a person reading a job's output sees and does. The job's ANSI colours
// are drawn (its escape codes never shown); stderr lines are tinted and stdout lines are not; each
// stream can be shown alone; search finds and counts matches in the scrollback and steps through
// them; Pause holds the screen still while the job writes, Follow shows what came meanwhile; after a
// dropped connection the output resumes byte for byte (no gap, nothing twice); the Download links
// give the raw log, both streams and each one. JOBWORKER_UI_SCREENSHOTS=DIR saves docs/ui-terminal.png.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Page } from 'playwright-core';

import { JobworkerClient } from '../../src/client';
import { launchBrowser, requireChromium, screenshot, terminalScreenLines, waitForTerminalEnd, type TestBrowser } from '../helpers/browser';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { mkdtempVisibleToJobs } from '../helpers/job-visible-dir';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startUi, writeContexts, type UiProcess } from '../helpers/ui-process';
import { fetchDigest, RECORD_CHUNKS, RECORDED_OUTPUT, RECORDED_SO_FAR, TEXT_COLOURS, TINTED_ROWS } from './page-scripts';

let pki: TestPki;
let dir: string;
let home: string;
let daemon: RunningTestDaemon;
let client: JobworkerClient;
let ui: UiProcess;
let browser: TestBrowser;
let page: Page;

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** Opens the job's page with the terminal's chunks recorded (window.recordedChunks). */
async function openJobPage(id: string): Promise<void> {
  await page.goto(`${ui.origin}/#/`);
  await page.evaluate(RECORD_CHUNKS);
  await page.goto(`${ui.origin}/#/jobs/alpha/${id}`);
  await page.locator('.job-page .record').waitFor();
}

const status = () => page.locator('[data-role="log-status"]');

const waitForLogEnd = () => waitForTerminalEnd(page);
const screenLines = () => terminalScreenLines(page);

async function recordedOutput(): Promise<{ sha256: string; bytes: number; gaps: string[]; text: string | null }> {
  return page.evaluate(RECORDED_OUTPUT);
}

/** Resolves when the job has finished (its output stream ends with the final status). */
async function finished(id: string): Promise<void> {
  for await (const message of client.streamLogs({ jobId: id, follow: true })) if (message.finalStatus !== null) return;
}

/** Clicks a Download link as a person does: the file the browser saves, and the name it offers. */
async function download(selector: string): Promise<{ name: string; bytes: Buffer }> {
  const [saved] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const file = await saved.path();
  return { name: saved.suggestedFilename(), bytes: readFileSync(file) };
}

describe('the terminal view in Chromium', { ...requireRoot, ...requireChromium }, () => {
  before(async () => {
    pki = await createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-terminal-'));
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-terminal-home-'));
    const admin = await pki.client({ name: 'ada', roles: ['admin'] });
    daemon = await startTlsDaemon('ui-terminal', await pki.server(), dir, mkdtempSync(path.join(dir, 'state-')));
    writeContexts(home, { alpha: { address: daemon.address, tls: admin } }, 'alpha');
    client = await JobworkerClient.connect({ address: daemon.address, tls: admin });
    ui = await startUi(home);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.goto(ui.url);
  });

  after(async () => {
    await browser?.close();
    await ui?.stop();
    client?.close();
    await daemon?.stop();
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  const colourLine = '\x1b[31mred alert\x1b[0m plain \x1b[1;32mbold green\x1b[0m\n';
  const outLines = [1, 2, 3, 4, 5, 6].map((n) => `out ${n}\n`).join('');
  const errLines = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `err ${n}\n`).join('');
  let twoStreams: string;

  it('draws the colours a job asks for, never its escape codes, and tints its stderr lines only (every line of a several-line write)', async () => {
    const script = `printf '\\033[31mred alert\\033[0m plain \\033[1;32mbold green\\033[0m\\n'; for i in 1 2 3 4 5 6; do echo "out $i"; echo "err $i" >&2; done; printf 'err 7\\nerr 8\\nerr 9\\n' >&2`;
    twoStreams = (await client.startJob({ command: 'sh', args: ['-c', script] })).id;
    await openJobPage(twoStreams);
    await waitForLogEnd();
    const screen = await screenLines();
    // Each line once, the escape codes interpreted, not shown (the streams' interleaving is the capture's).
    assert.deepEqual([...screen].sort(), ['red alert plain bold green', ...outLines.trimEnd().split('\n'), ...errLines.trimEnd().split('\n')].sort());

    const colours = await page.evaluate<Record<string, { rgb: number[]; bold: boolean } | null>>(TEXT_COLOURS(['red alert', 'plain', 'bold green']));
    const [red, plain, green] = [colours['red alert']!, colours.plain!, colours['bold green']!];
    assert.ok(red.rgb[0]! > 150 && red.rgb[0]! > 2 * red.rgb[1]! && red.rgb[0]! > 2 * red.rgb[2]!, `"red alert" is drawn red: ${JSON.stringify(colours)}`);
    assert.ok(green.rgb[1]! > 150 && green.rgb[1]! > 1.3 * green.rgb[0]! && green.rgb[1]! > 1.3 * green.rgb[2]!, `"bold green" is drawn green: ${JSON.stringify(colours)}`);
    assert.ok(green.bold && !plain.bold && !red.bold, `only "bold green" is bold: ${JSON.stringify(colours)}`);
    assert.ok(Math.max(...plain.rgb) - Math.min(...plain.rgb) < 30, `"plain" is drawn in the default (grey) colour: ${JSON.stringify(colours)}`);

    // Every stderr line is under the tint, no stdout line is (the tints are drawn on the next frame).
    const expected = (rows: { text: string }[]) => rows.map(({ text }) => ({ text, tinted: text.startsWith('err ') }));
    await page.locator('.xterm-decoration.stderr-lines').first().waitFor({ state: 'attached' });
    await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))');
    const rows = await page.evaluate<{ text: string; tinted: boolean }[]>(`(${TINTED_ROWS})()`);
    assert.deepEqual(rows, expected(rows));
    await screenshot(page, 'terminal');
  });

  it('shows one stream alone when asked, and each Download link saves that raw output', async () => {
    await page.selectOption('select[name="streams"]', 'stderr');
    await waitForLogEnd();
    assert.deepEqual(await screenLines(), errLines.trimEnd().split('\n'));
    await page.selectOption('select[name="streams"]', 'stdout');
    await waitForLogEnd();
    assert.deepEqual(await screenLines(), ['red alert plain bold green', ...outLines.trimEnd().split('\n')]);

    const stdout = await download('.downloads a[href$="?streams=stdout"]');
    assert.deepEqual(stdout, { name: `job-${twoStreams}-stdout.log`, bytes: Buffer.from(colourLine + outLines) });
    const stderr = await download('.downloads a[href$="?streams=stderr"]');
    assert.deepEqual(stderr, { name: `job-${twoStreams}-stderr.log`, bytes: Buffer.from(errLines) });
    // Both streams: in the order the daemon captured them, which is what the terminal shows.
    await page.evaluate(RECORD_CHUNKS);
    await page.selectOption('select[name="streams"]', 'both');
    await waitForLogEnd();
    const shown = await recordedOutput();
    const both = await download('[data-role="download"]');
    assert.equal(both.name, `job-${twoStreams}.log`);
    assert.equal(both.bytes.length, colourLine.length + outLines.length + errLines.length);
    assert.deepEqual({ bytes: shown.bytes, sha256: shown.sha256 }, { bytes: both.bytes.length, sha256: sha256(both.bytes) });
  });

  it('finds text in the scrollback, counts the matches and steps through them', async () => {
    // 3000 lines (far more than the screen holds), three of them with the needle.
    const script = `seq 1 3000 | sed -e '100s/$/ needle A/' -e '1500s/$/ needle B/' -e '2900s/$/ needle C/'`;
    const job = await client.startJob({ command: 'sh', args: ['-c', script] });
    await openJobPage(job.id);
    await waitForLogEnd();
    assert.equal((await screenLines()).at(-1), '3000');
    const results = page.locator('[data-role="search-results"]');
    const search = page.locator('input[name="log-search"]');
    await search.fill('needle');
    const steps: [string, string, string][] = [];
    let previous = 'none';
    for (const key of ['Enter', 'Enter', 'Enter', 'Enter', 'Shift+Enter']) {
      await search.press(key);
      // Every step moves to another match: wait for the count to say so.
      await page.locator(`[data-role="search-results"][data-count="3"]:not([data-index="${previous}"]):not([data-index="-1"])`).waitFor();
      const text = (await results.textContent())!;
      previous = (await results.getAttribute('data-index'))!;
      const index = Number(text.split(' ')[0]);
      const wanted = ['100 needle A', '1500 needle B', '2900 needle C'][index - 1]!;
      // The terminal scrolled to the match: its line is on the screen.
      await page.locator('.xterm-rows > div', { hasText: wanted }).waitFor();
      steps.push([key, text, wanted]);
    }
    const order = steps.map(([, text]) => Number(text.split(' ')[0]));
    for (let i = 1; i < 4; i++) assert.equal(order[i], (order[i - 1]! % 3) + 1, `Enter goes to the next match, wrapping: ${JSON.stringify(steps)}`);
    assert.equal(order[4], order[2], `Shift+Enter goes back one: ${JSON.stringify(steps)}`);
    await search.fill('no such text');
    await search.press('Enter');
    await results.filter({ hasText: 'no match' }).waitFor();
    await search.fill('');
    await search.press('Enter');
    assert.equal(await results.textContent(), '');
  });

  it('holds the screen still while paused as the job writes on; Follow shows the rest, byte for byte', async () => {
    // The job writes a first part, waits for the test's signal file, then writes 2000 lines more.
    // Where the job (another user, with a private /tmp) can see the file appear.
    const signals = mkdtempVisibleToJobs('ui-signal');
    const go = path.join(signals, 'go');
    const script = `seq -f 'first %g' 1 20; while [ ! -e ${go} ]; do sleep 0.05; done; seq -f 'second %g' 1 2000`;
    try {
      const job = await client.startJob({ command: 'sh', args: ['-c', script] });
      await openJobPage(job.id);
      await page.locator('.xterm-rows > div', { hasText: 'first 20' }).waitFor();
      await page.click('button[data-role="pause"]');
      await status().and(page.locator('[data-state="paused"]')).waitFor();
      const atPause = { screen: await screenLines(), shown: await status().getAttribute('data-shown-bytes') };
      writeFileSync(go, '');
      await finished(job.id);
      // Everything reached the page (the end too) and waits: the screen is as it was.
      await status().and(page.locator('[data-end-received="true"]')).waitFor();
      assert.match((await status().textContent())!, /^paused \([1-9]\d* chunks waiting\)/);
      assert.deepEqual({ screen: await screenLines(), shown: await status().getAttribute('data-shown-bytes') }, atPause);
      assert.equal(await page.textContent('button[data-role="pause"]'), 'Follow');

      await page.click('button[data-role="pause"]');
      await waitForLogEnd();
      const lines = (from: string, count: number) => Array.from({ length: count }, (_, i) => `${from} ${i + 1}\n`).join('');
      const expected = lines('first', 20) + lines('second', 2000);
      const shown = await recordedOutput();
      assert.deepEqual(shown.gaps, []);
      assert.deepEqual({ bytes: shown.bytes, sha256: shown.sha256 }, { bytes: expected.length, sha256: sha256(expected) });
      assert.equal((await screenLines()).at(-1), 'second 2000', 'following again: the screen is at the end');
    } finally {
      rmSync(signals, { recursive: true, force: true });
    }
  });

  it('resumes the output after dropped connections byte for byte: no gap, nothing twice', async () => {
    const sockets: { close(): Promise<void> }[] = [];
    let connected = () => {};
    await page.routeWebSocket(/\/api\/ws$/, (socket) => {
      const server = socket.connectToServer();
      const drop = { code: 4000, reason: 'the test drops the connection' };
      sockets.push({ close: async () => Promise.all([socket.close(drop).catch(() => undefined), server.close(drop).catch(() => undefined)]).then(() => undefined) });
      connected();
    });
    try {
      // Only WebSockets opened from now on go through the route: load the page again.
      const first = new Promise<void>((resolve) => (connected = resolve));
      await page.reload();
      await first;
      const count = 4000;
      // Both streams, slowly enough (40 pauses of 0.1 s) that both drops happen in the middle.
      const script = `i=0; while [ $i -lt ${count} ]; do echo "out $i"; if [ $((i % 100)) -eq 0 ]; then echo "err $i" >&2; sleep 0.1; fi; i=$((i+1)); done`;
      const job = await client.startJob({ command: 'sh', args: ['-c', script] });
      await openJobPage(job.id);
      const drops: number[] = [];
      for (let drop = 0; drop < 2; drop++) {
        // Once more output reached the terminal since the previous drop, drop the connection again.
        await page.waitForFunction((since) => {
          const chunks: { nextOffset: number }[] = Reflect.get(globalThis, 'recordedChunks');
          return chunks.length > 0 && chunks[chunks.length - 1]!.nextOffset > since;
        }, drops.at(-1) ?? 0);
        const reconnected = new Promise<void>((resolve) => (connected = resolve));
        assert.equal(sockets.length, 1, 'the page has one WebSocket, through the route');
        for (const socket of sockets.splice(0)) await socket.close();
        drops.push((await page.evaluate<{ nextOffset: number }>(RECORDED_SO_FAR)).nextOffset);
        await reconnected;
      }
      await waitForLogEnd();
      const final = await client.getJob(job.id);
      assert.ok(drops.every((offset) => offset > 0 && offset < final.log.sizeBytes), `both drops in the middle of the output (at ${drops.join(', ')} of ${final.log.sizeBytes} bytes)`);
      const shown = await recordedOutput();
      assert.deepEqual(shown.gaps, []);
      const outLines = shown.text!.split('\n').filter((text) => text.startsWith('out '));
      assert.deepEqual(outLines, Array.from({ length: count }, (_, i) => `out ${i}`));
      // Byte for byte what the daemon captured, in its order: the raw log of both streams.
      const href = await page.getAttribute('[data-role="download"]', 'href');
      const raw = await page.evaluate<{ bytes: number; sha256: string }>(fetchDigest(href!));
      assert.deepEqual({ bytes: shown.bytes, sha256: shown.sha256 }, raw);
    } finally {
      await page.unrouteAll();
    }
  });
});
