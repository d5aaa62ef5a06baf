// SIGKILL the daemon mid-run — jobs running (some done writing, some still writing, one with a
// process that escaped into its own session), followers attached — and start it again: followers
// fail promptly instead of hanging; the running jobs become `lost` (docs/library.md, recovery), every
// process of theirs is gone and so are their cgroups; every byte the daemon had committed before the
// kill is in their logs and streamable, and the logs are well-formed prefixes of what the jobs wrote;
// jobs that had finished keep their history; new jobs work.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import type { JobworkerClient, JobView } from '../../src/client';
import { startTimeOf } from '../helpers/cgroup-jobs';
import { isRunning } from '../helpers/proc';
import { eventually, ReliabilityDaemon, withTimeout } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

interface Tracked {
  job: JobView;
  kind: 'done-writing' | 'writing' | 'escaped' | 'finished';
  /** Text the followers received before the kill. */
  seen: string[];
  committedBeforeKill: number;
}

async function follow(client: JobworkerClient, jobId: string, into: string[], index: number): Promise<string> {
  try {
    for await (const message of client.streamLogs({ jobId, follow: true })) {
      for (const chunk of message.chunks) if (chunk.stream === 'stdout') into[index] = (into[index] ?? '') + chunk.data.toString();
    }
    return 'end';
  } catch (error) {
    return (error as { codeName?: string }).codeName ?? String(error);
  }
}

async function stdoutOf(client: JobworkerClient, jobId: string): Promise<string> {
  return (await jobOutput(client, { jobId })).stdout.toString();
}

function sequence(prefix: string, n: number): string {
  let text = '';
  for (let i = 1; i <= n; i++) text += `${prefix} ${i}\n`;
  return text;
}

/** Pids in a job's unified cgroup, with their start times (to tell them from reused pids later). */
function processesOf(daemon: ReliabilityDaemon, jobId: string): { pid: number; start: string }[] {
  const dir = daemon.jobCgroups().find((d) => d.startsWith('/sys/fs/cgroup/unified/') && path.basename(d) === jobId);
  if (dir === undefined) return [];
  return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .map((pid) => ({ pid, start: startTimeOf(pid) ?? '' }));
}

export const daemonSigkill: Scenario = {
  name: 'daemon-sigkill',
  group: 'faults',
  title: 'SIGKILL the daemon mid-run (jobs running, followers attached), restart',
  timeoutMs: (soak) => (soak ? 1800_000 : 5 * 60_000),
  async run(ctx: ScenarioContext) {
    const rounds = ctx.soak ? 10 : 2;
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'sigkill' });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    let totals = { lost: 0, followers: 0, bytes: 0, processesKilled: 0 };

    for (let round = 0; round < rounds; round++) {
      const client = await daemon.client('crash', ['writer']);
      const tracked: Tracked[] = [];
      for (let i = 0; i < 3; i++) {
        const job = await client.startJob({ command: 'sh', args: ['-c', `seq -f 'finished-${i} %g' 1 1000`] });
        tracked.push({ job, kind: 'finished', seen: [], committedBeforeKill: 0 });
      }
      for (let i = 0; i < 8; i++) {
        const job = await client.startJob({ command: 'sh', args: ['-c', `seq -f 'done-${i} %g' 1 20000; exec sleep 1000`] });
        tracked.push({ job, kind: 'done-writing', seen: [], committedBeforeKill: 0 });
      }
      for (let i = 0; i < 8; i++) {
        const job = await client.startJob({ command: 'sh', args: ['-c', `i=0; while :; do i=$((i+1)); echo "writing-${i} $i"; sleep 0.005; done`] });
        tracked.push({ job, kind: 'writing', seen: [], committedBeforeKill: 0 });
      }
      const escaped = await client.startJob({ command: 'sh', args: ['-c', 'setsid sleep 1000 & echo forked; exec sleep 1000'] });
      tracked.push({ job: escaped, kind: 'escaped', seen: [], committedBeforeKill: 0 });

      // Two followers per running job, on separate connections.
      const followers: Promise<string>[] = [];
      const others = [await daemon.client('crash', ['reader']), await daemon.client('crash', ['reader'])];
      for (const t of tracked.filter((t) => t.kind !== 'finished')) {
        for (const [k, reader] of others.entries()) followers.push(follow(reader, t.job.id, t.seen, k));
      }
      // Wait until the done-writing jobs' output is all committed and the writers have written a while.
      for (const t of tracked.filter((t) => t.kind === 'finished')) {
        assert.equal(await stdoutOf(client, t.job.id), sequence(`finished-${tracked.indexOf(t)}`, 1000));
      }
      const doneText = (t: Tracked) => sequence(`done-${tracked.filter((x) => x.kind === 'done-writing').indexOf(t)}`, 20000);
      assert.ok(
        await eventually(() => tracked.filter((t) => t.kind === 'done-writing').every((t) => t.seen[0] === doneText(t) && t.seen[1] === doneText(t)), 60_000),
        'the done-writing jobs did not reach their followers',
      );
      await delay(1000);
      const processes = new Map<string, { pid: number; start: string }[]>();
      for (const t of tracked) {
        t.committedBeforeKill = Number((await client.getJob(t.job.id)).log!.sizeBytes);
        processes.set(t.job.id, processesOf(daemon, t.job.id));
      }
      // In its own PID namespace a job's processes include its init (jobworker-init, PID 1 there).
      assert.equal(processes.get(escaped.id)!.length, 3, 'the escaped job has its init, its shell and the setsid sleep');

      const killedAt = Date.now();
      await daemon.stop('SIGKILL');
      const ends = await withTimeout(Promise.all(followers), 30_000, 'followers after the daemon was killed');
      const followersEndedMs = Date.now() - killedAt;
      assert.ok(ends.every((e) => e === 'UNAVAILABLE' || e === 'CANCELLED' || e === 'INTERNAL'), `followers ended with ${[...new Set(ends)].join(', ')}`);

      await daemon.restart();
      const recovered = daemon.linesWith('recovered after an unclean stop')[0] as { lostJobs?: string[] } | undefined;
      const running = tracked.filter((t) => t.kind !== 'finished');
      assert.deepEqual([...(recovered?.lostJobs ?? [])].sort(), running.map((t) => t.job.id).sort(), 'jobs recovered as lost');
      const after = await daemon.client('crash', ['writer']);
      let killed = 0;
      for (const t of tracked) {
        const status = await after.getJob(t.job.id);
        const text = await stdoutOf(after, t.job.id);
        const what = `${t.kind} job ${t.job.id}`;
        if (t.kind === 'finished') {
          assert.equal(status.state, 'exited', what);
          assert.equal(text, sequence(`finished-${tracked.indexOf(t)}`, 1000), what);
          continue;
        }
        assert.equal(status.state, 'lost', `${what}: ${status.outcome.reason}`);
        assert.ok(Number(status.log!.sizeBytes) >= t.committedBeforeKill, `${what}: log shrank below what was committed before the kill`);
        for (const seen of t.seen) assert.ok(text.startsWith(seen ?? ''), `${what}: a follower saw bytes that are not in the log`);
        if (t.kind === 'done-writing') assert.equal(text, doneText(t), what);
        if (t.kind === 'writing') {
          const n = text.split('\n').length - 1;
          assert.ok(n > 0, `${what}: empty log`);
          assert.equal(text, sequence(`writing-${tracked.filter((x) => x.kind === 'writing').indexOf(t)}`, n), `${what}: not a clean prefix`);
        }
        if (t.kind === 'escaped') assert.equal(text, 'forked\n', what);
        for (const p of processes.get(t.job.id)!) {
          const survived = startTimeOf(p.pid) === p.start && isRunning(p.pid);
          assert.equal(survived, false, `${what}: process ${p.pid} survived the recovery`);
          killed++;
        }
        totals.bytes += Number(status.log!.sizeBytes);
      }
      assert.deepEqual(daemon.jobCgroups(), [], 'job cgroups after recovery');

      // New jobs work.
      const fresh = await after.startJob({ command: 'sh', args: ['-c', 'echo after the crash'] });
      assert.ok(await eventually(async () => (await after.getJob(fresh.id)).state === 'exited', 30_000));
      assert.equal(await stdoutOf(after, fresh.id), 'after the crash\n');
      assert.deepEqual(daemon.zombies(), []);
      totals = { lost: totals.lost + running.length, followers: totals.followers + followers.length, bytes: totals.bytes, processesKilled: totals.processesKilled + killed };
      ctx.log(`round ${round + 1}: ${running.length} lost, ${killed} job processes gone, followers ended ${followersEndedMs} ms after the kill`);
      ctx.figure('followers ended after (ms)', followersEndedMs);
      daemon.closeClients();
    }
    ctx.figure('kills', rounds);
    ctx.figure('jobs lost', totals.lost);
    ctx.figure('followers cut', totals.followers);
    ctx.figure('job processes gone', totals.processesKilled);
    ctx.figure('log bytes kept', totals.bytes);
    ctx.figure('job cgroups left', 0);
  },
};
