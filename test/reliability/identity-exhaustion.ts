// Four hostile identities each exhaust one of their limits at once — memory (jobs allocating until
// their slice OOM-kills them, again and again), processes (a fork bomb), running jobs, log bytes on
// disk — while another identity starts jobs: its StartJob p99 stays within 5× of the quiet value,
// its jobs run to their end, its memory-holding job is untouched. Every refusal is
// RESOURCE_EXHAUSTED naming the identity and the quota; the kernel's counters say the slices held.
import assert from 'node:assert/strict';

import { ClientError, type JobworkerClient, type JobView } from '../../src/client';
import { eventually, mib, ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

const LIMITS = { memoryBytes: 256 << 20, pids: 64, maxRunningJobs: 20, logBytes: 16 << 20 };

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Sequential StartJob calls of a trivial job: their latencies in ms, and the jobs. */
async function timedStarts(client: JobworkerClient, count: number): Promise<{ latencies: number[]; jobs: JobView[] }> {
  const latencies: number[] = [];
  const jobs: JobView[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    jobs.push(await client.startJob({ command: 'echo', args: [`bob-${i}`] }));
    latencies.push(performance.now() - t0);
  }
  return { latencies, jobs };
}

/** The quota a refused start named ("" if it was refused otherwise). */
function quotaOf(error: unknown, identity: string): string {
  if (!(error instanceof ClientError) || error.codeName !== 'RESOURCE_EXHAUSTED') throw error;
  const match = /^identity "([^"]+)" is at its (\w+) quota: \d+ of \d+ \(identityLimits\.\w+\); .+/.exec(error.details);
  assert.ok(match !== null && match[1] === identity, `a refusal names the identity, the quota and the remedy: ${error.details}`);
  return match[2]!;
}

export const identityExhaustion: Scenario = {
  name: 'identity-exhaustion',
  group: 'security',
  title: 'four identities exhaust memory, pids, running jobs and log bytes; another keeps starting jobs',
  timeoutMs: (soak) => (soak ? 20 * 60_000 : 5 * 60_000),
  async run(ctx: ScenarioContext) {
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'tenancy', config: { identityLimits: LIMITS, maxRunningJobs: 10_000 } });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const [bob, memory, forker, runner, logger] = await Promise.all(
      ['bob', 'mallory-memory', 'mallory-pids', 'mallory-jobs', 'mallory-logs'].map((name) => daemon.client(name, ['writer'])),
    );
    // 200: p99 is then the second slowest, not the single slowest start of a shared machine.
    const samples = ctx.soak ? 1000 : 200;

    // Quiet: bob alone.
    const quiet = await timedStarts(bob!, samples);
    const holder = await bob!.startJob({ command: 'python3', args: ['-c', 'import time; b = b"\\x01" * (64 << 20); print("held", flush=True); time.sleep(3600)'] });
    assert.ok(await eventually(async () => (await jobOutput(bob!, { jobId: holder.id })).stdout.includes('held'), 30_000), 'bob holds 64 MiB');

    // The attack.
    const refusals = new Map<string, number>();
    const refused = (error: unknown, identity: string): void => {
      const quota = quotaOf(error, identity);
      refusals.set(quota, (refusals.get(quota) ?? 0) + 1);
    };
    const attacking = new AbortController();
    const attackers: Promise<void>[] = [];
    const failures: unknown[] = [];
    /** Runs `round` until the attack is over; a failure is kept for the end (and ends the loop). */
    const attack = (round: () => Promise<void>): void => {
      attackers.push(
        (async () => {
          while (!attacking.signal.aborted) {
            try {
              await round();
            } catch (error) {
              if (!attacking.signal.aborted) failures.push(error);
              return;
            }
          }
        })(),
      );
    };
    ctx.defer(async () => {
      attacking.abort();
      await Promise.all(attackers);
    });
    let oomRuns = 0;
    let hogRuns = 0;
    // Memory: jobs that allocate until their slice is full, four at a time, started again as they die.
    const hog = { command: 'python3', args: ['-c', 'x = []\nwhile True: x.append(b"\\x01" * (1 << 20))'] };
    attack(async () => {
      const jobs = await Promise.all(Array.from({ length: 4 }, () => memory!.startJob(hog).catch((error: unknown) => (refused(error, 'mallory-memory'), null))));
      for (const job of jobs) {
        if (job === null) continue;
        const final = (await jobOutput(memory!, { jobId: job.id, follow: true })).final;
        hogRuns++;
        ctx.log(`hog ${job.id.slice(0, 8)}: ${final?.outcome.reason}`);
        if (final?.outcome.oomKilled === true) oomRuns++;
      }
    });
    // Processes: a fork bomb that holds every process its slice allows.
    const bomb = await forker!.startJob({
      command: 'python3',
      args: ['-c', 'import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n    except BlockingIOError:\n        time.sleep(0.01)\n        continue\n    if pid == 0:\n        time.sleep(3600)\n        os._exit(0)\n    n += 1'],
    });
    // Running jobs: as many sleepers as it may run, then more.
    const sleepers: JobView[] = [];
    attack(async () => {
      try {
        sleepers.push(await runner!.startJob({ command: 'sleep', args: ['3600'] }));
      } catch (error) {
        refused(error, 'mallory-jobs');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    // Log bytes: a job writing 64 MiB, cut at the quota; then starts, refused.
    const flood = await logger!.startJob({ command: 'head', args: ['-c', String(64 << 20), '/dev/zero'] });
    const flooded = (await jobOutput(logger!, { jobId: flood.id, follow: true })).final!;
    attack(async () => {
      await logger!.startJob({ command: 'true' }).then(
        () => assert.fail('a start past the log quota was accepted'),
        (error: unknown) => refused(error, 'mallory-logs'),
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
    });
    assert.ok(await eventually(() => sleepers.length >= LIMITS.maxRunningJobs, 60_000), 'the runner holds every job it may run');
    assert.ok(await eventually(async () => ((await forker!.getIdentityUsage().catch(() => null))?.stats?.pidsCurrent ?? 0) >= LIMITS.pids - 1, 60_000), 'the fork bomb fills its slice');
    const peak = daemon.sample();

    // Bob, during the attack.
    const during = await timedStarts(bob!, samples);
    const admin = await daemon.client('root', ['admin']);
    const usage = Object.fromEntries(
      await Promise.all(['mallory-memory', 'mallory-pids', 'mallory-jobs', 'mallory-logs', 'bob'].map(async (name) => [name, await admin.getIdentityUsage(name)] as const)),
    );
    attacking.abort();
    await Promise.all(attackers);
    assert.deepEqual(failures, [], 'the attackers met only quota refusals');

    const quietP99 = percentile(quiet.latencies, 99);
    const attackP99 = percentile(during.latencies, 99);
    ctx.figure('quiet_start_p50_ms', Number(percentile(quiet.latencies, 50).toFixed(1)));
    ctx.figure('quiet_start_p99_ms', Number(quietP99.toFixed(1)));
    ctx.figure('attack_start_p50_ms', Number(percentile(during.latencies, 50).toFixed(1)));
    ctx.figure('attack_start_p99_ms', Number(attackP99.toFixed(1)));
    ctx.figure('p99_ratio', Number((attackP99 / quietP99).toFixed(2)));
    ctx.figure('hog_runs', hogRuns);
    ctx.figure('oom_killed_hog_runs', oomRuns);
    ctx.figure('fork_bomb_pids', usage['mallory-pids']!.stats?.pidsCurrent ?? 0);
    ctx.figure('memory_slice_peak', mib(usage['mallory-memory']!.stats?.memoryPeakBytes ?? 0));
    ctx.figure('runner_running', usage['mallory-jobs']!.runningJobs);
    ctx.figure('flooder_log_bytes', usage['mallory-logs']!.logBytes);
    for (const [quota, count] of refusals) ctx.figure(`refused_${quota}`, count);
    ctx.figure('daemon_rss', mib(peak.rssBytes));
    ctx.figure('daemon_fds', peak.fds);

    assert.ok(attackP99 <= 5 * quietP99, `bob's StartJob p99 ${attackP99.toFixed(1)} ms during the attack, ${quietP99.toFixed(1)} ms quiet: more than 5×`);
    assert.ok(oomRuns >= 1, 'the memory hogs were OOM-killed by their slice');
    assert.ok((usage['mallory-memory']!.stats?.memoryPeakBytes ?? 0) <= LIMITS.memoryBytes + (1 << 20), 'their slice never passed its memory');
    assert.ok((usage['mallory-pids']!.stats?.pidsCurrent ?? 0) <= LIMITS.pids + 1, 'the fork bomb stayed within its slice (+ its own first process on v1)');
    assert.equal(usage['mallory-jobs']!.runningJobs, LIMITS.maxRunningJobs);
    assert.ok((refusals.get('maxRunningJobs') ?? 0) > 0 && (refusals.get('logBytes') ?? 0) > 0, `refusals: ${JSON.stringify([...refusals])}`);
    assert.equal(flooded.log.truncated, true);
    assert.ok(usage['mallory-logs']!.logBytes <= LIMITS.logBytes + 256, `the flood stopped at the quota: ${usage['mallory-logs']!.logBytes}`);
    // Bob's service: every job ran to its end with its output; his big job was never touched.
    for (const [i, job] of [...quiet.jobs, ...during.jobs].entries()) {
      const { stdout, final } = await jobOutput(bob!, { jobId: job.id, follow: true });
      assert.equal(final?.state, 'exited', `bob's job ${i}: ${final?.outcome.reason}`);
      assert.equal(stdout.toString(), `bob-${i % samples}\n`);
    }
    const held = await bob!.getJob(holder.id);
    assert.equal(held.state, 'running');
    assert.equal(held.stats?.oomKills, 0);
    assert.equal(usage.bob!.stats?.oomKills ?? 0, 0);

    // Freed: the attackers' jobs end, a removal frees the flooder's log bytes.
    await Promise.all([...sleepers.map((job) => runner!.stopJob(job.id, { graceMs: 0 })), forker!.stopJob(bomb.id, { graceMs: 0 }), bob!.stopJob(holder.id, { graceMs: 0 })]);
    await logger!.removeJob(flood.id);
    const again = await logger!.startJob({ command: 'true' });
    assert.equal((await jobOutput(logger!, { jobId: again.id, follow: true })).final?.state, 'exited');
    assert.ok(daemon.alive);
  },
};
