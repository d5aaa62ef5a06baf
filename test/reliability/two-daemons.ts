// Two daemons started from the same cgroup (as a --dev daemon beside a system one): each derives its
// cgroup root from its state directory, so they run side by side, and neither a crash and restart
// (orphan sweep) nor a clean stop (root removal) of one touches the other's jobs; a third daemon
// configured onto a root another one owns refuses to start, naming the owner, and leaves that root
// and its jobs alone. A daemon whose start fails after its cgroup root was made leaves no cgroup.
import assert from 'node:assert/strict';
import type { JobView, JobworkerClient } from '../../src/client';
import { ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

async function sleepers(client: JobworkerClient, count: number): Promise<JobView[]> {
  return Promise.all(Array.from({ length: count }, () => client.startJob({ command: 'sleep', args: ['3600'] })));
}

async function stillRunning(client: JobworkerClient, jobs: readonly JobView[]): Promise<number> {
  let running = 0;
  for (const job of jobs) if ((await client.getJob(job.id)).state === 'running') running++;
  return running;
}

export const twoDaemons: Scenario = {
  name: 'two-daemons',
  group: 'faults',
  title: 'two daemons from one cgroup, a third on a root in use, a start failing after the root was made',
  timeoutMs: () => 4 * 60_000,
  async run(ctx: ScenarioContext) {
    const first = await ReliabilityDaemon.start(ctx.workDir, { label: 'system', placement: 'derived' });
    ctx.defer(async () => assert.deepEqual(await first.close(), [], 'cgroups of the first daemon left'));
    const second = await ReliabilityDaemon.start(ctx.workDir, { label: 'dev', placement: 'derived', pki: first.pki });
    ctx.defer(async () => assert.deepEqual(await second.close(), [], 'cgroups of the second daemon left'));
    assert.notEqual(first.cgroupRootName, second.cgroupRootName);
    ctx.figure('roots', `${first.cgroupRootName}, ${second.cgroupRootName}`);
    const [a, b] = [await first.client('alice', ['writer']), await second.client('alice', ['writer'])];
    const firstJobs = await sleepers(a, 5);
    const secondJobs = await sleepers(b, 5);

    // The second one crashes and starts again: it sweeps its own orphans, not the first one's jobs.
    await second.stop('SIGKILL');
    await second.restart();
    const b2 = await second.client('alice', ['writer']);
    assert.deepEqual((await Promise.all(secondJobs.map((job) => b2.getJob(job.id)))).map((job) => job.state), secondJobs.map(() => 'lost'));
    ctx.figure('first_running_after_second_restart', await stillRunning(a, firstJobs));
    assert.equal(await stillRunning(a, firstJobs), 5, 'the restart swept only its own root');

    // A clean stop of the second removes its root; the first's jobs run on and its starts work.
    await sleepers(b2, 3);
    await second.stop('SIGTERM');
    assert.deepEqual(second.allCgroups(), [], 'a clean stop leaves nothing of its root');
    ctx.figure('first_running_after_second_stop', await stillRunning(a, firstJobs));
    assert.equal(await stillRunning(a, firstJobs), 5);
    const after = await a.startJob({ command: 'echo', args: ['still here'] });
    assert.equal((await jobOutput(a, { jobId: after.id, follow: true })).stdout.toString(), 'still here\n');

    // A third daemon configured onto the first one's root is refused, naming its owner.
    const refused = await ReliabilityDaemon.startRefused(ctx.workDir, { label: 'intruder', pki: first.pki, config: { cgroupRootName: first.cgroupRootName } });
    const reason = refused.lines.find((line) => line.level === 'error')?.msg ?? refused.stderr;
    ctx.figure('intruder_exit', refused.code ?? -1);
    ctx.figure('intruder_error', reason.replace(/\n/g, ' ').slice(0, 160));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`cgroup root .*${first.cgroupRootName} is in use by process ${first.pid} \\(.*job-worker.*\\), another jobworker`));
    assert.equal(await stillRunning(a, firstJobs), 5, 'the refused daemon killed nothing');
    assert.ok(first.jobCgroups().length >= 5 * 2, 'and removed nothing');

    // A start that fails after the cgroup driver opened (a device that is no disk, found only then)
    // leaves no cgroup.
    const failing = await ReliabilityDaemon.startRefused(ctx.workDir, {
      label: 'failing',
      config: { identityOverrides: { x: { io: [{ device: '/proc/self', readBps: 1 << 20 }] } } },
      placement: 'derived',
    });
    assert.notEqual(failing.code, 0);
    assert.match(failing.stderr, /identityOverrides\["x"\]\.io/);
    ctx.figure('failed_start_cgroups_left', failing.cgroupsLeft.length);
    assert.deepEqual(failing.cgroupsLeft, [], `the failed start left its root ${failing.cgroupRootName}`);
    // The intruder's refusal touched the root it was refused: still there, still the first one's.
    assert.ok(refused.cgroupsLeft.length > 0 && refused.cgroupRootName === first.cgroupRootName);

    for (const job of firstJobs) await a.stopJob(job.id, { graceMs: 0 });
  },
};
