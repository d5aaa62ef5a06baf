// Issue 14, ListJobs and tail/since under concurrency, with another identity's latency measured.
// (1) 60 jobs with ~900 KiB of argv each, listed by 4 clients at once with page_size=1000: every
// page stays within 2 MiB (plus one job), every job is listed exactly once, and another client's
// GetJob p99 stays within 5x of quiet. (2) 20 readers asking tail_lines/since of a log of 500,000
// records in a loop: scans run a bounded number at a time, every answer is right, and another
// identity's StartJob p99 stays within 5x of quiet.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';

import { mib, pool, ReliabilityDaemon } from '../helpers/reliability';
import { getLatencies, p99, startLatencies, withinServiceBound } from './latency';
import type { Scenario, ScenarioContext } from './scenario';

const MIB = 1 << 20;

interface AttackResult {
  listings: { count: number; unique: number; pages: number; biggestPageArgBytes: number }[];
  answers: number;
  wrong: string[];
}

/** Runs attack-client.js (a process of its own) and resolves with its results. */
async function attack(options: object): Promise<AttackResult> {
  const child = spawn(process.execPath, [path.join(__dirname, 'attack-client.js'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (data: Buffer) => (out += data.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, 'attack client failed');
  return JSON.parse(out) as AttackResult;
}

export const bigLists: Scenario = {
  name: 'big-lists',
  group: 'load',
  title: 'ListJobs(page_size=1000) of jobs with big argv, and tail/since scans, by many clients at once',
  timeoutMs: (soak) => (soak ? 20 * 60_000 : 4 * 60_000),
  async run(ctx: ScenarioContext) {
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'lists' });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const writer = await daemon.client('lists-writer', ['writer']);
    const control = await daemon.client('lists-control', ['writer']);

    // 1. Big jobs, listed by 4 clients at once.
    const arg = 'x'.repeat(100 << 10);
    const jobs = 60;
    await pool(jobs, 4, async () => {
      await writer.startJob({ command: 'true', args: Array.from({ length: 9 }, () => arg) });
    });
    const address = `localhost:${daemon.port}`;
    const readerFiles = await daemon.clientFiles('lists-writer', ['reader']);
    const probe = (await control.startJob({ command: 'true' })).id;
    await getLatencies(control, probe, 10);
    const quietGet = p99(await getLatencies(control, probe, 50));
    const before = daemon.sample();
    let peakRss = before.rssBytes;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, daemon.sample().rssBytes)), 50);
    ctx.defer(() => clearInterval(sampler));
    const listing = attack({ address, tls: readerFiles, mode: 'list', clients: 4, ms: ctx.soak ? 60_000 : 8000 });
    const during = getLatencies(control, probe, 100);
    const [result, latGet] = await Promise.all([listing, during]);
    clearInterval(sampler);
    assert.ok(result.listings.length >= 4, 'listings done');
    for (const l of result.listings) {
      assert.equal(l.count, jobs, 'jobs listed');
      assert.equal(l.unique, jobs, 'each job once');
      assert.ok(l.biggestPageArgBytes <= 2 * MIB + 900 * 1024, `a page held ${mib(l.biggestPageArgBytes)} of argv`);
    }
    ctx.figure('jobs listed / pages per listing / biggest page argv', `${jobs} x 900 KiB / ${result.listings[0]!.pages} / ${mib(Math.max(...result.listings.map((l) => l.biggestPageArgBytes)))}`);
    ctx.figure('listings (4 clients at once, page_size 1000)', result.listings.length);
    ctx.figure('RSS before / peak while listing', `${mib(before.rssBytes)} / ${mib(peakRss)}`);
    ctx.figure('control GetJob p99 quiet / while listing (ms)', `${quietGet.toFixed(1)} / ${p99(latGet).toFixed(1)}`);
    assert.ok(withinServiceBound(quietGet, p99(latGet)), `GetJob p99 ${p99(latGet).toFixed(1)} ms while listing vs ${quietGet.toFixed(1)} ms quiet`);

    // 2. tail/since scans of a log of 500,000 small records, 20 at a time, in a loop.
    const big = await writer.startJob({ command: 'awk', args: ['BEGIN { for (i = 1; i <= 500000; i++) { print i; fflush() } }'] });
    for await (const message of writer.streamLogs({ jobId: big.id, follow: true, tailLines: 1 })) void message;
    const status = await writer.getJob(big.id);
    ctx.figure('scanned log: records (approx) / size', `500,000 / ${mib(status.log?.sizeBytes ?? 0)}`);
    await startLatencies(control, 5);
    const quietStart = p99(await startLatencies(control, 40));
    const tailFiles = await daemon.clientFiles('lists-tailer', ['admin']);
    const scanning = attack({ address, tls: tailFiles, mode: 'tail', clients: 20, ms: ctx.soak ? 60_000 : 8000, jobId: big.id });
    const latScan = await startLatencies(control, 40);
    const scans = await scanning;
    assert.deepEqual(scans.wrong, [], 'tail answers');
    ctx.figure('tail/since answers (20 clients, 8 s)', scans.answers);
    ctx.figure('control StartJob p99 quiet / during scans (ms)', `${quietStart.toFixed(1)} / ${p99(latScan).toFixed(1)}`);
    assert.ok(withinServiceBound(quietStart, p99(latScan)), `StartJob p99 ${p99(latScan).toFixed(1)} ms during scans vs ${quietStart.toFixed(1)} ms quiet`);
    assert.ok(daemon.alive);
  },
};
