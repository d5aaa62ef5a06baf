// Issue 14, streams: every stream counts against its identity and none grows without bound.
// (1) An identity with no role (any verified certificate may call health and reflection) opens
// health Watch and reflection streams and never reads them: beyond maxStreamsPerIdentity they are
// refused with RESOURCE_EXHAUSTED, and another identity is served. (2) A WatchJobs client that
// stops reading while a writer starts jobs with big argv: a status carries only a preview of a big
// argv, so the daemon's memory stays flat; the changes not read are coalesced per job and bounded
// at enqueue time (maxUnreadWatchJobs, set low here so 200 jobs pass it once the window is full); past the bound the server
// ends the stream at once (its queue dropped, RESOURCE_EXHAUSTED) while the client still reads
// nothing; the client sees that status after what was already in flight once it reads again (HTTP/2
// sends trailers after data).
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { eventually, mib, pool, ReliabilityDaemon, sumMetric, withTimeout } from '../helpers/reliability';
import { craftCertificate } from '../helpers/pki';
import { pemOf, rawCall, rawSession, type RawCall } from './raw-grpc';
import type { Scenario, ScenarioContext } from './scenario';

const MAX_STREAMS = 64;
/**
 * Well below the 200 jobs started: the client's HTTP/2 window and Node's buffers take ~120 KiB of
 * statuses (~50 jobs' changes at ~1.2 KiB each) before the server holds any back.
 */
const MAX_UNREAD_WATCH_JOBS = 20;
const RESOURCE_EXHAUSTED = 8;

/** A reflection request asking for the list of services (field 7, list_services). */
const LIST_SERVICES = Buffer.from([0x3a, 0x01, 0x2a]);

export const stalledStreams: Scenario = {
  name: 'stalled-streams',
  group: 'security',
  title: 'never-read health Watch, reflection and WatchJobs streams: counted per identity, bounded in memory',
  timeoutMs: (soak) => (soak ? 20 * 60_000 : 3 * 60_000),
  async run(ctx: ScenarioContext) {
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'stall', config: { maxStreamsPerIdentity: MAX_STREAMS, maxUnreadWatchJobs: MAX_UNREAD_WATCH_JOBS, retention: { maxFinishedJobs: 5000 } } });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const before = daemon.sample();

    // 1. Health Watch and reflection streams from a certificate without a role, never read.
    const nobody = await craftCertificate({ subject: [{ CN: ['stall-nobody'] }], issuer: daemon.pki.ca });
    const session = await rawSession(daemon.port, { ca: daemon.pki.ca.certificatePem, cert: nobody.certificatePem, key: nobody.privateKeyPem });
    ctx.defer(() => session.destroy());
    const calls: RawCall[] = [];
    for (let i = 0; i < 50; i++) calls.push(rawCall(session, '/grpc.health.v1.Health/Watch', new Uint8Array(0)));
    for (let i = 0; i < 50; i++) calls.push(rawCall(session, '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', LIST_SERVICES, false));
    const firsts = await withTimeout(Promise.all(calls.map((c) => c.first)), 30_000, 'first answers');
    const admitted = firsts.filter((f) => f.kind === 'data').length;
    const refused = firsts.filter((f) => f.kind === 'status' && f.code === RESOURCE_EXHAUSTED).length;
    ctx.figure('health Watch + reflection streams asked / admitted / RESOURCE_EXHAUSTED', `${calls.length} / ${admitted} / ${refused}`);
    assert.equal(admitted, MAX_STREAMS, 'streams admitted for one identity');
    assert.equal(refused, calls.length - MAX_STREAMS, 'the others are refused with RESOURCE_EXHAUSTED');
    assert.equal(sumMetric(await daemon.metrics(), 'jobworker_active_streams'), MAX_STREAMS);
    // Another identity is served meanwhile.
    const other = await daemon.client('stall-other', ['writer']);
    assert.equal(await other.checkHealth(10_000), 'SERVING');
    session.destroy();
    await eventually(async () => sumMetric(await daemon.metrics(), 'jobworker_active_streams') === 0, 15_000, 100);

    // 2. A WatchJobs client that stops reading while jobs with 128 KiB of argv each come and go.
    const watcherFiles = await daemon.clientFiles('stall-watcher', ['admin']);
    const watchSession = await rawSession(daemon.port, pemOf(watcherFiles));
    ctx.defer(() => watchSession.destroy());
    const watch = rawCall(watchSession, '/jobworker.v1.JobService/WatchJobs', pb.WatchJobsRequest.encode(pb.WatchJobsRequest.fromPartial({})).finish());
    // A first argument that fits the 1 KiB preview (so each status is ~1.2 KiB), then 128 KiB that
    // only the job's spec file holds.
    const bigArgs = [Buffer.alloc(900, 'p').toString(), Buffer.alloc(64 << 10, 'a').toString(), Buffer.alloc(64 << 10, 'b').toString()];
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, daemon.sample().rssBytes)), 200);
    ctx.defer(() => clearInterval(sampler));
    const jobs = 200;
    const t0 = Date.now();
    let endedAfterJobs = -1;
    let started = 0;
    const ended = async () => ((await daemon.metrics()).get('jobworker_grpc_requests_total{method="WatchJobs",code="RESOURCE_EXHAUSTED"}') ?? 0) > 0;
    await pool(jobs, 8, async () => {
      await other.startJob({ command: 'true', args: bigArgs });
      started++;
      if (endedAfterJobs < 0 && (await ended())) endedAfterJobs = started;
    });
    assert.ok(await eventually(ended, 10_000, 100), 'the stalled WatchJobs was not ended');
    clearInterval(sampler);
    ctx.figure('jobs started (128 KiB argv each) / s', `${jobs} / ${((Date.now() - t0) / 1000).toFixed(1)}`);
    ctx.figure('stalled WatchJobs ended by the server after jobs', endedAfterJobs < 0 ? `${jobs} (after the last start)` : endedAfterJobs);
    // The client reads again: it gets what was in flight, then RESOURCE_EXHAUSTED.
    watch.drain();
    const code = await withTimeout(watch.status, 30_000, 'WatchJobs status');
    ctx.figure('stalled WatchJobs status', code === RESOURCE_EXHAUSTED ? 'RESOURCE_EXHAUSTED' : String(code));
    assert.equal(code, RESOURCE_EXHAUSTED);
    assert.ok(await eventually(async () => sumMetric(await daemon.metrics(), 'jobworker_active_streams') === 0, 10_000, 100), 'the stream slot is released');
    ctx.figure('daemon RSS before / peak', `${mib(before.rssBytes)} / ${mib(peakRss)}`);
    assert.ok(daemon.alive);
    await delay(100);
  },
};
