// Jobs that behave oddly, each handled per the documented semantics (docs/library.md, Lifecycle):
// closing stdout (and stderr) early, spewing binary, forking 10,000 short children, a fork bomb
// against its pids limit, ignoring SIGTERM (also from a process in its own session), handling it.
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import type { JobworkerClient, JobView } from '../../src/client';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { startTimeOf } from '../helpers/cgroup-jobs';
import { isRunning } from '../helpers/proc';
import { ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

interface Result {
  stdout: Buffer;
  stderr: Buffer;
  final: JobView;
}

async function run(client: JobworkerClient, args: string[], limits: Partial<pb.Limits> = {}): Promise<Result & { job: JobView }> {
  const job = await client.startJob({ command: 'sh', args: ['-c', ...args], limits: { io: [], ...limits } });
  return { job, ...(await collect(client, job.id)) };
}

async function collect(client: JobworkerClient, jobId: string): Promise<Result> {
  const { stdout, stderr, final } = await jobOutput(client, { jobId, follow: true });
  assert.ok(final !== undefined, 'no final status');
  return { stdout, stderr, final };
}

/** The AES-128-CTR keystream `openssl enc` produces from zeros: deterministic binary of every byte value. */
function keystream(keyHex: string, bytes: number): string {
  const cipher = createCipheriv('aes-128-ctr', Buffer.from(keyHex, 'hex'), Buffer.alloc(16));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(1 << 20);
  for (let left = bytes; left > 0; left -= zeros.length) hash.update(cipher.update(zeros.subarray(0, Math.min(left, zeros.length))));
  return hash.digest('hex');
}

function processesIn(daemon: ReliabilityDaemon, jobId: string): { pid: number; start: string }[] {
  const dir = daemon.jobCgroups().find((d) => d.startsWith('/sys/fs/cgroup/unified/') && path.basename(d) === jobId);
  if (dir === undefined) return [];
  return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number).map((pid) => ({ pid, start: startTimeOf(pid) ?? '' }));
}

function survivors(list: { pid: number; start: string }[]): number[] {
  return list.filter((p) => startTimeOf(p.pid) === p.start && isRunning(p.pid)).map((p) => p.pid);
}

async function waitForOutput(client: JobworkerClient, jobId: string, text: string): Promise<void> {
  for await (const message of client.streamLogs({ jobId, follow: true })) {
    if (message.chunks.some((c) => c.data.toString().includes(text))) return;
  }
  throw new Error(`job ${jobId} ended before writing ${text}`);
}

export const oddJobs: Scenario = {
  name: 'odd-jobs',
  group: 'faults',
  title: 'jobs that close stdout early, spew binary, fork 10,000 children, ignore SIGTERM',
  timeoutMs: () => 5 * 60_000,
  async run(ctx: ScenarioContext) {
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'odd' });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const client = await daemon.client('odd', ['writer']);

    // Closes stdout early and goes on: its exit still counts, stderr is still captured.
    const closed = await run(client, ['echo before; exec 1>&-; sleep 0.5; echo after >&2; exit 3']);
    assert.equal(closed.stdout.toString(), 'before\n');
    assert.equal(closed.stderr.toString(), 'after\n');
    assert.equal(closed.final.state, 'failed');
    assert.equal(closed.final.outcome.exitCode, 3);
    // Closes both and goes on for a second: capture ends at once, the job only when the process does.
    const t0 = Date.now();
    const silent = await run(client, ['echo bye; exec >&- 2>&-; sleep 1; exit 0']);
    const silentMs = Date.now() - t0;
    assert.equal(silent.stdout.toString(), 'bye\n');
    assert.equal(silent.final.state, 'exited');
    assert.ok(silentMs >= 1000, `a job that closed its output was reported finished after ${silentMs} ms`);
    ctx.figure('closed stdout early', 'exit 3, stderr kept');

    // Binary output: every byte value, NULs and invalid UTF-8, on both streams, byte-exact.
    const outBytes = 64 << 20;
    const errBytes = 8 << 20;
    const keyOut = '000102030405060708090a0b0c0d0e0f';
    const keyErr = 'f0e0d0c0b0a090807060504030201000';
    const binary = await run(client, [
      `openssl enc -aes-128-ctr -K ${keyOut} -iv 00000000000000000000000000000000 -nosalt < /dev/zero 2>/dev/null | head -c ${outBytes}; ` +
        `openssl enc -aes-128-ctr -K ${keyErr} -iv 00000000000000000000000000000000 -nosalt < /dev/zero 2>/dev/null | head -c ${errBytes} >&2`,
    ]);
    assert.equal(binary.final.state, 'exited', binary.final.outcome.reason ?? undefined);
    assert.equal(binary.stdout.length, outBytes);
    assert.equal(binary.stderr.length, errBytes);
    assert.equal(createHash('sha256').update(binary.stdout).digest('hex'), keystream(keyOut, outBytes), 'stdout bytes differ');
    assert.equal(createHash('sha256').update(binary.stderr).digest('hex'), keystream(keyErr, errBytes), 'stderr bytes differ');
    ctx.figure('binary bytes (stdout+stderr)', outBytes + errBytes);

    // 10,000 short children, one after the other, under a pids limit of 16.
    const t1 = Date.now();
    const forker = await run(client, ['i=0; while [ $i -lt 10000 ]; do ( exit 0 ); i=$((i+1)); done; echo forked $i'], { pids: 16 });
    assert.equal(forker.final.state, 'exited', forker.final.outcome.reason ?? undefined);
    assert.equal(forker.stdout.toString(), 'forked 10000\n');
    ctx.figure('children forked', 10_000);
    ctx.figure('fork job seconds', ((Date.now() - t1) / 1000).toFixed(1));

    // A fork bomb against its pids limit: the kernel refuses forks beyond it; when the shell gives up
    // the worker kills what is left; nothing survives, the cgroup goes.
    const bomb = await client.startJob({ command: 'sh', args: ['-c', 'echo started; i=0; while [ $i -lt 3000 ]; do sleep 30 & i=$((i+1)); done; wait'], limits: { pids: 50, io: [] } });
    await waitForOutput(client, bomb.id, 'started');
    let peakProcesses = 0;
    let bombProcs: { pid: number; start: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const now = processesIn(daemon, bomb.id);
      if (now.length > peakProcesses) peakProcesses = now.length;
      if (now.length > 0) bombProcs = now;
      if ((await client.getJob(bomb.id)).state !== 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const bombStatus = await client.getJob(bomb.id);
    if (bombStatus.state === 'running') await client.stopJob(bomb.id, { graceMs: 500 });
    const bombFinal = (await collect(client, bomb.id)).final;
    assert.ok(peakProcesses <= 50, `${peakProcesses} processes under a pids limit of 50`);
    assert.deepEqual(survivors(bombProcs), [], 'processes of the fork bomb survived');
    ctx.figure('fork bomb', `${bombFinal.state} (${bombFinal.outcome.reason}), peak ${peakProcesses} processes of 50`);

    // Ignores SIGTERM, with a helper in its own session that ignores it too: stopped after the
    // grace period by killing the whole cgroup.
    const stubborn = await client.startJob({ command: 'sh', args: ['-c', 'trap "" TERM; setsid sh -c \'trap "" TERM; while :; do sleep 0.1; done\' & echo ready; while :; do sleep 0.1; done'] });
    await waitForOutput(client, stubborn.id, 'ready');
    await new Promise((r) => setTimeout(r, 300));
    const stubbornProcs = processesIn(daemon, stubborn.id);
    assert.ok(stubbornProcs.length >= 2);
    const t2 = Date.now();
    const stopped = await client.stopJob(stubborn.id, { graceMs: 1500 });
    const stopMs = Date.now() - t2;
    assert.equal(stopped.job!.state, 'stopped');
    assert.equal(stopped.job!.outcome.signal, 'SIGKILL');
    assert.equal(stopped.job!.outcome.stoppedBy, 'odd');
    assert.ok(stopMs >= 1500 && stopMs < 1500 + 10_000, `stop took ${stopMs} ms with a 1500 ms grace`);
    assert.deepEqual(survivors(stubbornProcs), [], 'processes of the stubborn job survived');
    ctx.figure('ignores SIGTERM: stopped after (ms, grace 1500)', stopMs);

    // Handles SIGTERM: ends within the grace period, recorded as stopped, its last words kept.
    const polite = await client.startJob({ command: 'sh', args: ['-c', 'trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.1; done'] });
    await waitForOutput(client, polite.id, 'ready');
    const t3 = Date.now();
    const politeStop = await client.stopJob(polite.id, { graceMs: 10_000 });
    const politeMs = Date.now() - t3;
    assert.equal(politeStop.job!.state, 'stopped');
    assert.equal(politeStop.job!.outcome.exitCode, 0);
    assert.ok(politeMs < 5000, `a job that handles SIGTERM took ${politeMs} ms to stop`);
    assert.equal((await collect(client, polite.id)).stdout.toString(), 'ready\nbye\n');
    ctx.figure('handles SIGTERM: stopped after (ms)', politeMs);

    assert.deepEqual(daemon.jobCgroups(), []);
    assert.deepEqual(daemon.zombies(), []);
    ctx.figure('zombies', 0);
    ctx.figure('job cgroups left', 0);
  },
};
