// Capture of a busy job while 200 other jobs finish. The busy job writes 1 GiB to stdout (dd, captured
// by the addon into its log); meanwhile 200 short jobs start and finish, each in real cgroups that its
// spawn's setupOps create and its exitOps read and remove, exactly as the Worker runs them (the op
// lists come from the cgroup driver). The figure: the busy job's MB/s, against the same job alone,
// alternating in the same run. Exit ops wait on the kernel (a v1 rmdir can wait for an RCU grace
// period): wherever they run, they must not stall the capture of everyone else.
import { mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';

import { openCgroupDriver, type OpenedCgroupDriver } from '../src/cgroup';
import { spawnProcessAsync } from '../src/native';
import { captureRun } from './capture';
import { compare, median, MIB, SkipBenchmark, type Benchmark } from './harness';
import { JOB_ENV, TRUE_PATH } from './spawn-contenders';

const LIMITS = { cpu: 1, memoryBytes: 256 << 20, pids: 64 };

export const captureWhileExitsBenchmark: Benchmark = {
  name: 'capture-while-exits',
  description: 'MB/s of a job writing 1 GiB to stdout while 200 jobs in real cgroups finish, vs the same job alone',
  async run({ quick, dataDir, removeAtExit, progress }) {
    if (process.getuid?.() !== 0) throw new SkipBenchmark('needs root (creates cgroups)');
    const mib = quick ? 128 : 1024;
    const others = quick ? 20 : 200;
    const rounds = quick ? 1 : 5;
    const dir = await mkdtemp(path.join(dataDir, 'jobworker-bench-capture-exits-'));
    removeAtExit(dir);
    const driver = await openCgroupDriver({ rootName: `jobworker-bench-exits-${process.pid}` });
    const alone: number[] = [];
    const busy: number[] = [];
    let othersSeconds = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ['alone', 'busy'] : ['busy', 'alone'];
        for (const which of order) {
          const log = path.join(dir, 'busy.log');
          if (which === 'alone') {
            alone.push(await captureRun(log, mib));
          } else {
            const wave = finishMany(driver, dir, round, others);
            busy.push(await captureRun(log, mib));
            const waveSeconds = await wave;
            othersSeconds = Math.max(othersSeconds, waveSeconds);
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
          `${mib} MiB of zeros through dd, median of ${rounds} runs each; ${others} /bin/true jobs with ` +
          `cgroups created in their spawn and removed by their exit ops (${driver.mode} host) started with it ` +
          `(the slowest wave took ${othersSeconds.toFixed(2)} s); on 2 CPUs the other jobs also take CPU time, so ` +
          'below 1x is expected; no target',
      }),
    ];
  },
};

/** Starts `count` short jobs at once, each in its own cgroups; resolves when all have exited (seconds). */
async function finishMany(driver: OpenedCgroupDriver, dir: string, round: number, count: number): Promise<number> {
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const planned = await driver.plan(`bench-${round}-${i}`, LIMITS, '/');
      const proc = await spawnProcessAsync({
        command: TRUE_PATH,
        env: JOB_ENV,
        logPath: path.join(dir, `other-${round}-${i}.log`),
        setupOps: planned.createOps,
        exitOps: planned.cgroup.settleOps(),
        ...planned.cgroup.placementPaths(),
      });
      const exit = await proc.exited;
      await proc.closed;
      await rm(path.join(dir, `other-${round}-${i}.log`), { force: true });
      if (exit.code !== 0) throw new Error(`short job exited with ${exit.code ?? exit.signal}`);
      const settled = exit.exitOps === undefined ? undefined : await planned.cgroup.settled(exit.exitOps);
      if (settled?.removed !== true) await planned.cgroup.destroy();
    }),
  );
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function removeAll(driver: OpenedCgroupDriver): Promise<void> {
  for (const id of await driver.listJobIds()) await (await driver.open(id))?.destroy();
  await driver.releaseRoot();
}
