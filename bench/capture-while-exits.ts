// Capture of a busy job while 200 other jobs finish. The busy job writes 1 GiB to stdout (dd, captured
// by the addon into its log). 200 other jobs were started before it, each in real cgroups that its
// spawn's setupOps created, with exitOps that read the final stats and remove them: exactly the ops
// the Worker runs (the op lists come from the cgroup driver). As the busy job starts they are all
// signalled, so they finish, and their exit ops run, while it writes. The figure: the busy job's
// MB/s against the same job alone, alternating in the same run. Exit ops wait on the kernel (a v1
// rmdir can wait for an RCU grace period): wherever they run, they must not stall everyone's capture.
import { mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';

import { openCgroupDriver, type JobCgroupPlan, type OpenedCgroupDriver } from '../src/cgroup';
import { spawnProcessAsync, type NativeProcess } from '../src/native';
import { captureRun } from './capture';
import { compare, median, MIB, SkipBenchmark, type Benchmark } from './harness';
import { JOB_ENV } from './spawn-contenders';

const LIMITS = { cpu: 1, memoryBytes: 256 << 20, pids: 64 };

export const captureWhileExitsBenchmark: Benchmark = {
  name: 'capture-while-exits',
  description: 'MB/s of a job writing 1 GiB to stdout while 200 jobs in real cgroups finish, vs the same job alone',
  async run({ quick, dataDir, removeAtExit, progress }) {
    if (process.getuid?.() !== 0) throw new SkipBenchmark('needs root (creates cgroups)');
    const mib = quick ? 128 : 1024;
    const others = quick ? 20 : 200;
    const rounds = quick ? 1 : 7;
    const dir = await mkdtemp(path.join(dataDir, 'jobworker-bench-capture-exits-'));
    removeAtExit(dir);
    const driver = await openCgroupDriver({ rootName: `jobworker-bench-exits-${process.pid}` });
    const alone: number[] = [];
    const busy: number[] = [];
    const waves: number[] = [];
    try {
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ['alone', 'busy'] : ['busy', 'alone'];
        for (const which of order) {
          const log = path.join(dir, 'busy.log');
          if (which === 'alone') {
            alone.push(await captureRun(log, mib));
          } else {
            const running = await startIdle(driver, dir, round, others);
            const capture = captureRun(log, mib);
            const wave = finishAll(running);
            busy.push(await capture);
            waves.push(await wave);
          }
          await rm(log, { force: true });
          const seconds = (which === 'alone' ? alone : busy).at(-1)!;
          progress(`  round ${round + 1}/${rounds} ${which}: ${((mib * MIB) / 1e6 / seconds).toFixed(0)} MB/s`);
        }
      }
    } finally {
      await removeAll(driver);
      await rm(dir, { recursive: true, force: true });
    }
    const mbPerSecond = (seconds: number[]): number => (mib * MIB) / 1e6 / median(seconds);
    return [
      compare({
        name: 'capture-while-exits.busy-vs-alone',
        unit: 'MB/s',
        better: 'higher',
        value: mbPerSecond(busy),
        baseline: 'the same job alone',
        baselineValue: mbPerSecond(alone),
        note:
          `${mib} MiB of zeros through dd, median of ${rounds} runs each; ${others} sleep jobs in cgroups (${driver.mode} host), ` +
          `started before it, signalled as it starts: their exits, exit ops (stats read, cgroups removed) and events ` +
          `took ${median(waves).toFixed(2)} s (median) of its ${median(busy).toFixed(2)} s; no target`,
      }),
    ];
  },
};

interface RunningJob {
  proc: NativeProcess;
  plan: JobCgroupPlan;
  log: string;
}

/** Starts `count` jobs that sleep, each in its own cgroups with its exit ops; resolves once all run. */
async function startIdle(driver: OpenedCgroupDriver, dir: string, round: number, count: number): Promise<RunningJob[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const planned = await driver.plan({ id: `bench-${round}-${i}`, identity: 'bench' }, LIMITS, '/');
      const log = path.join(dir, `other-${round}-${i}.log`);
      const proc = await spawnProcessAsync({
        command: 'sleep',
        args: ['1000'],
        env: JOB_ENV,
        logPath: log,
        setupOps: planned.createOps,
        exitOps: planned.settleOps,
        ...planned.placement,
      });
      planned.createOpsRan('created');
      return { proc, plan: planned, log };
    }),
  );
}

/** Ends the jobs (SIGTERM) and waits for every exit; seconds until the last. Checks their cgroups went. */
async function finishAll(jobs: readonly RunningJob[]): Promise<number> {
  const start = process.hrtime.bigint();
  for (const { proc } of jobs) proc.kill('SIGTERM');
  const exits = await Promise.all(jobs.map(({ proc }) => proc.exited));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await Promise.all(
    jobs.map(async ({ proc, plan, log }, i) => {
      await proc.closed;
      await rm(log, { force: true });
      const exit = exits[i]!;
      if (exit.signal !== 'SIGTERM') throw new Error(`a sleep job ended with ${exit.code ?? exit.signal}`);
      const settled = exit.exitOps === undefined ? undefined : plan.settled(exit.exitOps);
      if (settled?.removed !== true) await plan.cgroup.destroy(); // a v1 hierarchy may still count the dying task
      await plan.release();
    }),
  );
  return seconds;
}

async function removeAll(driver: OpenedCgroupDriver): Promise<void> {
  for (const name of await driver.listJobs()) await (await driver.open(name))?.destroy();
  await driver.releaseRoot();
}
