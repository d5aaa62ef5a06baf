// 2,000 jobs (soak: 20,000) started over gRPC by 20 concurrent clients, mixed short and long, each
// with limits: every one reaches the final state its command calls for, with the right exit code,
// signal or stopper and its output; afterwards no zombie, no job cgroup, and the daemon's open fds
// and resident memory back within 10% of where they were before the load.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

import type { JobworkerClient, JobView, StopResultView } from '../../src/client';
import { isRunning } from '../helpers/proc';
import { eventually, mib, pool, prng, ReliabilityDaemon, sumMetric, type ProcSample } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';

type Kind = 'exit' | 'long' | 'signal' | 'stopped' | 'stderr';

interface Plan {
  index: number;
  kind: Kind;
  code: number;
  sleepMs: number;
  limits: { cpu: number; memoryBytes: number; pids: number };
}

function planJob(index: number, random: () => number): Plan {
  const r = random();
  const kind: Kind = r < 0.6 ? 'exit' : r < 0.8 ? 'long' : r < 0.87 ? 'signal' : r < 0.94 ? 'stopped' : 'stderr';
  return {
    index,
    kind,
    code: Math.floor(random() * 4) === 0 ? 0 : Math.floor(random() * 255) + 1,
    sleepMs: 200 + Math.floor(random() * 1800),
    limits: {
      cpu: [0.1, 0.25, 0.5, 1][Math.floor(random() * 4)]!,
      memoryBytes: [32, 64, 128][Math.floor(random() * 3)]! << 20,
      pids: [8, 16, 64][Math.floor(random() * 3)]!,
    },
  };
}

function commandOf(plan: Plan): string[] {
  const line = `job-${plan.index}`;
  switch (plan.kind) {
    case 'exit':
      return ['-c', `echo ${line}; exit ${plan.code}`];
    case 'long':
      return ['-c', `echo ${line}; sleep ${(plan.sleepMs / 1000).toFixed(3)}; exit ${plan.code}`];
    case 'signal':
      return ['-c', `echo ${line}; kill -KILL $$`];
    case 'stopped':
      return ['-c', `echo ${line}; exec sleep 120`];
    case 'stderr':
      return ['-c', `echo ${line} >&2; exit ${plan.code}`];
  }
}

/** What the final status must say. */
function checkFinal(plan: Plan, job: JobView, stopper: string): void {
  const what = `job ${plan.index} (${plan.kind}, ${job.id})`;
  const limits = job.limits!;
  assert.equal(limits.cpu, plan.limits.cpu, `${what}: cpu limit`);
  assert.equal(Number(limits.memoryBytes), plan.limits.memoryBytes, `${what}: memory limit`);
  assert.equal(limits.pids, plan.limits.pids, `${what}: pids limit`);
  if (plan.kind === 'signal') {
    assert.equal(job.state, 'failed', `${what}: state ${job.outcome.reason}`);
    assert.equal(job.outcome.signal, 'SIGKILL', what);
    assert.equal(job.outcome.exitCode, null, what);
  } else if (plan.kind === 'stopped') {
    assert.equal(job.state, 'stopped', `${what}: state ${job.outcome.reason}`);
    assert.equal(job.outcome.stoppedBy, stopper, what);
    assert.equal(job.outcome.signal, 'SIGTERM', what);
  } else {
    assert.equal(job.state, plan.code === 0 ? 'exited' : 'failed', `${what}: state ${job.outcome.reason}`);
    assert.equal(job.outcome.exitCode, plan.code, what);
    assert.equal(job.outcome.signal, null, what);
  }
  assert.equal(job.log?.droppedBytes, 0, what);
}

async function runJob(client: JobworkerClient, name: string, plan: Plan, latencies: number[]): Promise<JobView> {
  const t0 = performance.now();
  const started = await client.startJob({ command: 'sh', args: commandOf(plan), limits: { ...plan.limits, io: [] } });
  latencies.push(performance.now() - t0);
  assert.equal(started.owner, name);
  let stdout = '';
  let stderr = '';
  let final: JobView | undefined;
  let stop: Promise<StopResultView> | undefined;
  for await (const message of client.streamLogs({ jobId: started.id, follow: true })) {
    for (const chunk of message.chunks) {
      if (chunk.stream === 'stdout') stdout += chunk.data.toString();
      else if (chunk.stream === 'stderr') stderr += chunk.data.toString();
    }
    if (plan.kind === 'stopped' && stop === undefined && stdout !== '') stop = client.stopJob(started.id, { graceMs: 500 });
    if (message.finalStatus !== null) final = message.finalStatus;
  }
  if (stop !== undefined) {
    const stopped = await stop;
    assert.equal(stopped.alreadyFinished, false);
  }
  const expected = `job-${plan.index}\n`;
  assert.equal(plan.kind === 'stderr' ? stderr : stdout, expected, `job ${plan.index}: output`);
  assert.equal(plan.kind === 'stderr' ? stdout : stderr, '', `job ${plan.index}: the other stream`);
  assert.ok(final !== undefined, `job ${plan.index}: the stream ended without a final status`);
  checkFinal(plan, final, name);
  return final;
}

/** Back within `ratio` of the start (or below it: a heap that shrank leaks nothing). */
function within(after: number, before: number, ratio: number): boolean {
  return after <= before * (1 + ratio);
}

export const loadJobs: Scenario = {
  name: 'load-jobs',
  group: 'load',
  title: '2,000 jobs from 20 concurrent clients, mixed short/long, with limits',
  timeoutMs: (soak) => (soak ? 3 * 3600_000 : 15 * 60_000),
  async run(ctx: ScenarioContext) {
    const total = ctx.soak ? 20_000 : 2_000;
    const clients = 20;
    const perClientWindow = 8;
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'load', config: { retention: { maxFinishedJobs: total + 1000 } } });
    ctx.defer(async () => {
      const left = await daemon.close();
      assert.deepEqual(left, [], 'cgroups left after the daemon stopped');
    });
    const names = Array.from({ length: clients }, (_, i) => `load-${String(i).padStart(2, '0')}`);
    const conns = await Promise.all(names.map((n) => daemon.client(n, ['writer'])));
    const admin = await daemon.client('load-admin', ['admin']);
    const random = prng(ctx.seed);
    const latencies: number[] = [];

    // Warm-up: connections made, code paths compiled, then the baseline.
    await Promise.all(conns.map((c, i) => pool(5, 5, (k) => runJob(c, names[i]!, { ...planJob(k, random), kind: 'exit', index: 100_000 + i * 10 + k }, []).then(() => undefined))));
    for (const job of await admin.listAllJobs()) await admin.removeJob(job.id);
    await delay(3000);
    const before: ProcSample = daemon.sample();
    ctx.log(`baseline: ${before.fds} fds, ${mib(before.rssBytes)} RSS, ${before.threads} threads`);

    const plans = Array.from({ length: total }, (_, i) => planJob(i, random));
    const counts = new Map<Kind, number>();
    for (const plan of plans) counts.set(plan.kind, (counts.get(plan.kind) ?? 0) + 1);
    const pids: number[] = [];
    let peak: ProcSample = before;
    let done = 0;
    const sampler = setInterval(() => {
      const now = daemon.sample();
      if (now.rssBytes > peak.rssBytes) peak = now;
    }, 500);
    const t0 = Date.now();
    try {
      await Promise.all(
        conns.map(async (client, c) => {
          const mine = plans.filter((p) => p.index % clients === c);
          await pool(mine.length, perClientWindow, async (k) => {
            ctx.signal.throwIfAborted();
            const final = await runJob(client, names[c]!, mine[k]!, latencies);
            pids.push(final.pid ?? 0);
            if (++done % 500 === 0) ctx.log(`${done}/${total} jobs final`);
          });
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    const seconds = (Date.now() - t0) / 1000;
    ctx.figure('jobs', total);
    ctx.figure('clients', clients);
    ctx.figure('kinds', [...counts].map(([k, n]) => `${k}:${n}`).join('/'));
    ctx.figure('seconds', Math.round(seconds));
    latencies.sort((a, b) => a - b);
    ctx.figure('start p50 ms', Math.round(latencies[Math.floor(latencies.length / 2)]!));
    ctx.figure('start p99 ms', Math.round(latencies[Math.floor(latencies.length * 0.99)]!));

    // Every job is final, as the daemon lists them too.
    const listed = await admin.listAllJobs();
    assert.equal(listed.length, total, 'jobs listed');
    const byState = new Map<string, number>();
    for (const job of listed) byState.set(job.state, (byState.get(job.state) ?? 0) + 1);
    assert.equal(byState.get('running') ?? 0, 0);
    assert.equal(byState.get('starting') ?? 0, 0);
    const metrics = await daemon.metrics();
    assert.equal(metrics.get('jobworker_jobs{state="running"}'), 0);

    // Nothing of any job is left: processes, zombies, cgroups.
    const zombies = daemon.zombies();
    const alive = pids.filter((pid) => isRunning(pid) && /jobworker-rel/.test(cgroupOf(pid)));
    const cgroups = daemon.jobCgroups();
    ctx.figure('zombies', zombies.length);
    ctx.figure('job processes left', alive.length);
    ctx.figure('job cgroups left', cgroups.length);
    assert.deepEqual(zombies, [], 'zombie children of the daemon');
    assert.deepEqual(alive, [], 'job processes still running');
    assert.deepEqual(cgroups, [], 'job cgroups left');

    // Remove the history too (it is kept on purpose), then fds and memory must come back.
    await pool(listed.length, 20, async (i) => admin.removeJob(listed[i]!.id));
    assert.equal((await admin.listAllJobs()).length, 0);
    let after = daemon.sample();
    // The daemon gives back memory grown in a burst after 30 s of idleness (src/daemon/idle-memory.ts):
    // wait up to 90 s. The heap figures below tell V8's heap from native memory.
    await eventually(() => {
      after = daemon.sample();
      return within(after.fds, before.fds, 0.1) && within(after.rssBytes, before.rssBytes, 0.1);
    }, 90_000, 1000);
    ctx.figure('fds before/after', `${before.fds}/${after.fds}`);
    ctx.figure('RSS before/peak/after', `${mib(before.rssBytes)}/${mib(peak.rssBytes)}/${mib(after.rssBytes)}`);
    const metricsAfter = await daemon.metrics();
    ctx.figure('active streams after', sumMetric(metricsAfter, 'jobworker_active_streams'));
    // Where the RSS is: V8's heap (total = reserved, used = live) and buffers outside it, the rest
    // is native (the addon, libuv, the allocator's free lists).
    const heap = (name: string) => mib(sumMetric(metricsAfter, name));
    ctx.figure('heap total/used/external after', `${heap('jobworker_nodejs_heap_size_total_bytes')}/${heap('jobworker_nodejs_heap_size_used_bytes')}/${heap('jobworker_nodejs_external_memory_bytes')}`);
    assert.ok(within(after.fds, before.fds, 0.1), `open fds: ${before.fds} before, ${after.fds} after`);
    assert.ok(within(after.rssBytes, before.rssBytes, 0.1), `RSS: ${mib(before.rssBytes)} before, ${mib(after.rssBytes)} after`);
  },
};

function cgroupOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return '';
  }
}
