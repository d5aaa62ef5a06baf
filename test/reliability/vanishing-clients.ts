// Clients that go away badly while streaming: TCP resets, killed client processes, frozen peers
// (half-open: the connection stays up, nothing answers) and clients that never read. A control
// follower keeps streaming a noisy job throughout and must never stall; afterwards the daemon's
// streams, fds and memory are back where they were.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect as http2Connect, constants as h2 } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';

import type { JobworkerClient } from '../../src/client';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { deadSockets, eventually, mib, ReliabilityDaemon, withTimeout, type ProcSample } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { readSession } from './streams';

/** A StreamLogs call on a raw HTTP/2-over-TLS connection whose TCP socket we can reset. */
async function rawFollower(port: number, files: { caPath: string; certificatePath: string; privateKeyPath: string }, jobId: string): Promise<{ tcp: Socket; firstData: Promise<void> }> {
  const tcp = netConnect({ host: '127.0.0.1', port });
  await once(tcp, 'connect');
  const tls = tlsConnect({
    socket: tcp,
    servername: 'localhost',
    ALPNProtocols: ['h2'],
    ca: readFileSync(files.caPath),
    cert: readFileSync(files.certificatePath),
    key: readFileSync(files.privateKeyPath),
    minVersion: 'TLSv1.3',
  });
  await once(tls, 'secureConnect');
  const session = http2Connect('https://localhost', { createConnection: () => tls });
  session.on('error', () => undefined);
  const stream = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST',
    [h2.HTTP2_HEADER_PATH]: '/jobworker.v1.JobService/StreamLogs',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => undefined);
  const body = pb.StreamLogsRequest.encode(pb.StreamLogsRequest.fromPartial({ jobId, follow: true })).finish();
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(frame, 5);
  stream.end(frame);
  const firstData = once(stream, 'data').then(() => undefined);
  return { tcp, firstData };
}

function startChildClient(options: object): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, [path.join(__dirname, 'stream-client.js'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'ready' && resolve());
    child.once('exit', (code, signal) => reject(new Error(`stream client exited early (${code ?? signal})`)));
  });
  ready.catch(() => undefined);
  return { child, ready };
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL'); // also ends a stopped process
  await exited;
}

/** Follows a noisy job and records the longest silence between messages. */
function controlFollower(client: JobworkerClient, jobId: string, signal: AbortSignal): { maxGapMs: () => number; messages: () => number; done: Promise<string> } {
  let last = Date.now();
  let maxGap = 0;
  let messages = 0;
  const done = (async () => {
    try {
      for await (const _ of client.streamLogs({ jobId, follow: true, tailLines: 1 }, signal)) {
        void _;
        const now = Date.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        messages++;
      }
      return 'end';
    } catch (error) {
      return (error as { codeName?: string }).codeName ?? String(error);
    }
  })();
  return { maxGapMs: () => Math.max(maxGap, Date.now() - last), messages: () => messages, done };
}

export const vanishingClients: Scenario = {
  name: 'vanishing-clients',
  group: 'faults',
  title: 'clients that vanish mid-stream (TCP reset, killed process), half-open peers, clients that never read',
  timeoutMs: (soak) => (soak ? 1800_000 : 6 * 60_000),
  async run(ctx: ScenarioContext) {
    const scale = ctx.soak ? 5 : 1;
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'vanish' });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const children: ChildProcess[] = [];
    ctx.defer(async () => {
      for (const child of children) await killChild(child);
    });
    const writer = await daemon.client('vanish', ['writer']);
    const files = await daemon.clientFiles('vanish', ['reader']);
    const address = `localhost:${daemon.port}`;

    const noisy = await writer.startJob({ command: 'sh', args: ['-c', 'while :; do seq 1 1000; sleep 0.01; done'] });
    const big = await writer.startJob({ command: 'head', args: ['-c', String(200 << 20), '/dev/urandom'] });
    assert.equal((await readSession(writer, { jobId: big.id, follow: true })).end, 'end');
    await delay(2000);
    const abort = new AbortController();
    ctx.defer(() => abort.abort());
    const control = controlFollower(writer, noisy.id, abort.signal);
    await eventually(() => control.messages() > 10, 10_000);
    await delay(1000);
    const baseStreams = await daemon.activeStreams();
    const before: ProcSample = daemon.sample();
    ctx.log(`baseline: ${before.fds} fds, ${mib(before.rssBytes)}, ${baseStreams} stream(s)`);
    const expected = { streams: baseStreams };
    /** Waits until the daemon's open streams are back to `expected.streams`; returns [left after 5 s, ms to release all]. */
    const streamsBack = async (what: string, ms: number): Promise<[number, number]> => {
      const t0 = Date.now();
      await eventually(async () => (await daemon.activeStreams()) === expected.streams, 5000, 100);
      const early = (await daemon.activeStreams()) - expected.streams;
      const ok = await eventually(async () => (await daemon.activeStreams()) === expected.streams, ms, 200);
      assert.ok(ok, `${what}: ${(await daemon.activeStreams()) - expected.streams} stream(s) still open after ${ms} ms`);
      return [early, Date.now() - t0];
    };
    // Keepalive: a ping every 30 s, 10 s to answer (src/server/server.ts); a connection the daemon
    // was not told about is found within that.
    const keepaliveBoundMs = 60_000;

    // 1. TCP resets in the middle of a stream.
    const resets = 20 * scale;
    const raws = await Promise.all(Array.from({ length: resets }, () => rawFollower(daemon.port, files, noisy.id)));
    await withTimeout(Promise.all(raws.map((r) => r.firstData)), 30_000, 'raw followers');
    assert.equal(await daemon.activeStreams(), baseStreams + resets);
    for (const raw of raws) raw.tcp.resetAndDestroy();
    const [resetLate, resetMs] = await streamsBack('after TCP resets', keepaliveBoundMs);
    ctx.figure('TCP resets', resets);
    ctx.figure('reset streams released within 5 s', resets - resetLate);
    ctx.figure('reset streams released (s)', (resetMs / 1000).toFixed(1));

    // 2. Client processes killed mid-stream (5 streams each).
    const killedProcesses = 10 * scale;
    const killed = Array.from({ length: killedProcesses }, () => startChildClient({ address, tls: files, jobId: noisy.id, streams: 5, mode: 'read' }));
    children.push(...killed.map((k) => k.child));
    await withTimeout(Promise.all(killed.map((k) => k.ready)), 60_000, 'child clients ready');
    assert.equal(await daemon.activeStreams(), baseStreams + killedProcesses * 5);
    for (const k of killed) await killChild(k.child);
    const [killLate, killMs] = await streamsBack('after killing client processes', keepaliveBoundMs);
    ctx.figure('client processes killed', killedProcesses);
    ctx.figure('their streams released within 5 s', killedProcesses * 5 - killLate);
    ctx.figure('their streams released (s)', (killMs / 1000).toFixed(1));

    // 3. Clients that never read: the daemon holds a bounded amount for each, and serves others.
    const stalled = 50 * scale;
    const stallers = Array.from({ length: 5 * scale }, () => startChildClient({ address, tls: files, jobId: big.id, streams: 10, mode: 'stall' }));
    children.push(...stallers.map((s) => s.child));
    await withTimeout(Promise.all(stallers.map((s) => s.ready)), 60_000, 'stalled clients ready');
    await delay(5000);
    const stalledEarly = daemon.sample();
    await delay(10_000);
    const stalledLate = daemon.sample();
    assert.equal(await daemon.activeStreams(), baseStreams + stalled);
    // Meanwhile another client streams the whole 200 MiB log, and starts and stops jobs.
    const t0 = Date.now();
    const whole = await readSession(writer, { jobId: big.id });
    const wholeMs = Date.now() - t0;
    assert.equal(whole.end, 'end');
    assert.equal(whole.bytes, 200 << 20);
    const quick = await writer.startJob({ command: 'true' });
    assert.equal((await readSession(writer, { jobId: quick.id, follow: true })).final?.state, 'exited');
    const perStream = (stalledLate.rssBytes - before.rssBytes) / stalled;
    ctx.figure('never-reading streams', stalled);
    ctx.figure('daemon memory per never-reading stream', mib(perStream));
    ctx.figure('RSS growth while stalled 5s→15s', mib(stalledLate.rssBytes - stalledEarly.rssBytes));
    ctx.figure('200 MiB read by another client meanwhile (s)', (wholeMs / 1000).toFixed(1));
    // Bounded: a few messages per stream, not the 200 MiB each of them asked for, and not growing.
    assert.ok(perStream < 8 << 20, `${mib(perStream)} per never-reading stream`);
    // 32 MiB per 50 stalled streams (the soak stalls 5x as many): what is still settling, not growth.
    assert.ok(stalledLate.rssBytes - stalledEarly.rssBytes < (32 << 20) * scale, 'memory grows while clients stall');

    // 4. Half-open: the never-reading clients freeze (SIGSTOP): their connections stay up but answer
    // nothing, not even HTTP/2 pings. Keepalive (30 s + 10 s) must find them and end their streams.
    const frozenAt = Date.now();
    for (const s of stallers) s.child.kill('SIGSTOP');
    await streamsBack('half-open connections', 90_000);
    ctx.figure('half-open peers found after (s)', ((Date.now() - frozenAt) / 1000).toFixed(0));
    for (const s of stallers) await killChild(s.child);

    // The control follower never stalled; everything is released.
    assert.ok(control.maxGapMs() < 5000, `the control follower waited ${control.maxGapMs()} ms for a message`);
    ctx.figure('control follower longest wait (ms)', control.maxGapMs());
    await writer.stopJob(noisy.id, { graceMs: 0 });
    assert.equal(await withTimeout(control.done, 30_000, 'control follower end'), 'end');
    expected.streams = baseStreams - 1;
    await streamsBack('at the end', 10_000);
    let after = daemon.sample();
    // Connections the daemon was not told about close by keepalive (see above), so wait that long.
    const fdWait = Date.now();
    for (let i = 0; i < keepaliveBoundMs / 500 && after.fds > before.fds; i++) {
      await delay(500);
      after = daemon.sample();
    }
    ctx.figure('fds back after (s)', ((Date.now() - fdWait) / 1000).toFixed(0));
    const dead = deadSockets(daemon.pid);
    ctx.figure('sockets closed by the peer but still open in the daemon', dead.length);
    ctx.figure('fds before/after', `${before.fds}/${after.fds}`);
    ctx.figure('RSS before/after', `${mib(before.rssBytes)}/${mib(after.rssBytes)}`);
    assert.deepEqual(dead, [], `the daemon still holds ${dead.length} socket(s) whose connection is gone (docs/reliability.md, findings)`);
    assert.ok(after.fds <= before.fds, `fds: ${before.fds} before, ${after.fds} after`);
    assert.deepEqual(daemon.zombies(), []);
  },
};
