// The journal with big specs, then restarts. Jobs as big as StartJob allows (1 MiB of argv + env)
// used to put their whole spec in every journal line: a few hundred made a journal no start could
// read (longer than V8's longest string), and each retained job cost its spec in RSS. Here: small
// jobs, then as many big ones, each followed by a restart, measuring the journal's size, the time to
// start and the RSS each retained job costs; then a journal of the previous format bigger than V8's
// longest string: the daemon starts, moves the big specs out of line, and keeps every job.
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import type { JobworkerClient } from '../../src/client';
import { version1Line, type Version1Spec } from '../helpers/journal';
import { eventually, mib, pool, procSample, ReliabilityDaemon, sumMetric } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';

/** V8's longest string (0x1fffffe8 characters): the old reader's readFile(…, 'utf8') failed past it. */
const V8_MAX_STRING = 0x1fffffe8;
const ARG_BYTES = 120 * 1024;

/** 1 MiB of argv + env, as the bounds allow: 4 arguments and 4 variables of 120 KiB. */
function bigRequest(i: number): { command: string; args: string[]; env: Record<string, string> } {
  const fill = (c: string) => `${i}:`.padEnd(ARG_BYTES, c);
  return { command: 'sh', args: ['-c', `echo big ${i}`, 'sh', fill('a'), fill('b'), fill('c'), fill('d')], env: { PATH: '/usr/bin:/bin', A: fill('e'), B: fill('f'), C: fill('g'), D: fill('h') } };
}

async function startAll(client: JobworkerClient, count: number, request: (i: number) => { command: string; args: string[]; env?: Record<string, string> }): Promise<string[]> {
  const ids: string[] = [];
  await pool(count, 4, async (i) => {
    ids[i] = (await client.startJob(request(i))).id;
  });
  return ids;
}

async function allFinished(client: JobworkerClient, count: number): Promise<void> {
  assert.ok(await eventually(async () => (await client.listAllJobs({ states: ['exited'] })).length === count, 120_000), 'jobs did not all finish');
}

/** Restarts the daemon: how long until it serves, and its RSS (and V8 heap) once settled. */
async function restart(daemon: ReliabilityDaemon): Promise<{ ms: number; rss: number; heap: number }> {
  await daemon.stop();
  const started = Date.now();
  await daemon.restart();
  const ms = Date.now() - started;
  await delay(2000); // the start's own garbage: let V8 collect some of it
  const heap = sumMetric(await daemon.metrics(), 'jobworker_nodejs_heap_size_used_bytes');
  return { ms, rss: daemon.sample().rssBytes, heap };
}

function journalBytes(daemon: ReliabilityDaemon): number {
  return statSync(path.join(daemon.stateDir, 'journal')).size;
}

/** Writes a format 1 journal for these jobs (two 1 MiB lines each), in big writes. Returns its size. */
async function writeVersion1Journal(file: string, jobs: { id: string; spec: Version1Spec; logBytes: number }[]): Promise<number> {
  const handle = await open(file, 'w', 0o600);
  let bytes = 0;
  try {
    for (const job of jobs) {
      const text = version1Line(job.id, job.spec, 'running', job.logBytes) + version1Line(job.id, job.spec, 'exited', job.logBytes);
      bytes += Buffer.byteLength(text);
      await handle.write(text);
    }
  } finally {
    await handle.close();
  }
  return bytes;
}

export const stateJournal: Scenario = {
  name: 'state-journal',
  group: 'load',
  title: 'a journal of big specs (1 MiB argv+env), restarts, and a previous-format journal longer than V8 strings',
  timeoutMs: (soak) => (soak ? 40 : 10) * 60_000,
  async run(ctx: ScenarioContext) {
    const count = ctx.soak ? 1000 : 300;
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'journal', config: { retention: { maxFinishedJobs: 100_000 } } });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    let client = await daemon.client('big', ['writer']);
    const empty = await restart(daemon);
    client = await daemon.client('big', ['writer']);

    const small = await startAll(client, count, (i) => ({ command: 'sh', args: ['-c', `echo small ${i}`] }));
    await allFinished(client, count);
    const smallJournal = journalBytes(daemon);
    const afterSmall = await restart(daemon);
    client = await daemon.client('big', ['writer']);

    const started = Date.now();
    const big = await startAll(client, count, bigRequest);
    await allFinished(client, 2 * count);
    const bigSeconds = (Date.now() - started) / 1000;
    const bigJournal = journalBytes(daemon);
    const afterBig = await restart(daemon);
    client = await daemon.client('big', ['writer']);

    // Every job is there; listings carry a big job's leading arguments, GetJob all of them.
    const listed = await client.listAllJobs();
    assert.equal(listed.length, 2 * count);
    const one = listed.find((job) => job.id === big[7])!;
    assert.deepEqual([one.args.slice(0, 3), one.argsOmitted], [['-c', 'echo big 7', 'sh'], 4]);
    const whole = await client.getJob(big[7]!);
    assert.deepEqual(whole.args, bigRequest(7).args);
    assert.equal((await client.getJob(small[3]!)).args[1], 'echo small 3');

    const perSmall = (afterSmall.rss - empty.rss) / count;
    const perBig = (afterBig.rss - afterSmall.rss) / count;
    ctx.figure('jobs (small, then big)', `${count} + ${count}`);
    ctx.figure('big starts', `${(count / bigSeconds).toFixed(0)}/s`);
    ctx.figure('journal bytes (small / +big)', `${smallJournal} / ${bigJournal}`);
    ctx.figure('start ms (empty / small / +big)', `${empty.ms} / ${afterSmall.ms} / ${afterBig.ms}`);
    ctx.figure('RSS after start (empty / small / +big)', `${mib(empty.rss)} / ${mib(afterSmall.rss)} / ${mib(afterBig.rss)}`);
    ctx.figure('heap used (empty / small / +big)', `${mib(empty.heap)} / ${mib(afterSmall.heap)} / ${mib(afterBig.heap)}`);
    ctx.figure('RSS per retained job (small / big)', `${(perSmall / 1024).toFixed(1)} KiB / ${(perBig / 1024).toFixed(1)} KiB`);
    // Before: ~1.3 MiB per big job. A big job's record is bounded like a small one's.
    assert.ok(bigJournal < 4 * smallJournal + (1 << 20), `journal ${bigJournal} bytes with big specs vs ${smallJournal} with small ones`);
    assert.ok(perBig < 64 * 1024, `RSS per retained big job: ${(perBig / 1024).toFixed(1)} KiB`);

    // The previous format, as big as it got: longer than V8's longest string.
    await daemon.stop();
    const logs = path.join(daemon.stateDir, 'logs');
    const logBytes = (id: string) => statSync(path.join(logs, `${id}.log`)).size;
    const legacy = [
      ...small.map((id, i) => ({ id, spec: { command: 'sh', args: ['-c', `echo small ${i}`], env: { PATH: '/usr/bin:/bin' }, cwd: '/', limits: {}, owner: 'big', user: null, maxRuntimeMs: null }, logBytes: logBytes(id) })),
      ...big.map((id, i) => ({ id, spec: { ...bigRequest(i), cwd: '/', limits: {}, owner: 'big', user: null, maxRuntimeMs: null }, logBytes: logBytes(id) })),
    ];
    const lineBytes = Buffer.byteLength(version1Line(big[0]!, legacy[count]!.spec, 'exited'));
    const repeated = legacy.slice(count, count + 50); // a job's lines again: the last one wins
    while ((legacy.length - count) * 2 * lineBytes < V8_MAX_STRING + (64 << 20)) legacy.push(...repeated);
    for (const name of readdirSync(logs)) if (name.endsWith('.spec')) rmSync(path.join(logs, name)); // the previous version had none
    const legacyBytes = await writeVersion1Journal(path.join(daemon.stateDir, 'journal'), legacy);
    assert.ok(legacyBytes > V8_MAX_STRING, `${legacyBytes} bytes`);
    const migratedStart = Date.now();
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, procSample(daemon.pid).rssBytes);
      } catch {
        // not started yet, or between samples
      }
    }, 50);
    try {
      await daemon.restart();
    } finally {
      clearInterval(sampler);
    }
    const migratedMs = Date.now() - migratedStart;
    const admin = await daemon.client('admin', ['admin']);
    const migrated = await admin.listAllJobs({ owner: 'big' });
    assert.equal(migrated.length, 2 * count, 'every job of the previous journal');
    assert.equal(migrated.filter((job) => job.state === 'exited').length, 2 * count);
    assert.deepEqual((await admin.getJob(big[11]!)).args, bigRequest(11).args, 'the whole spec, moved to its spec file');
    assert.equal(daemon.linesWith('state directory damaged; everything intact was kept').length, 0);
    ctx.figure('previous-format journal', `${(legacyBytes / 2 ** 20).toFixed(0)} MiB (> V8's ${(V8_MAX_STRING / 2 ** 20).toFixed(0)} MiB string limit) → ${journalBytes(daemon)} bytes`);
    ctx.figure('its start (read, migrate, compact)', `${(migratedMs / 1000).toFixed(1)} s, peak RSS ${mib(peak)}, after ${mib(daemon.sample().rssBytes)}`);
    assert.ok(peak < 512 * 2 ** 20, `peak RSS ${mib(peak)} reading a ${mib(legacyBytes)} journal`);
    assert.equal(daemon.alive, true);
  },
};
