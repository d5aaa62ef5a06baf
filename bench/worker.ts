// Start+finish of /bin/true jobs through the Worker — a cgroup with limits in every hierarchy,
// capture to a log, records in the state directory, final stats, cgroup removal — against
// child_process.spawn of the same program, at the same concurrency, in the same run.
import { spawn as spawnChild } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';

import { Worker } from '../src/worker';
import { compare, median, sampleInterleaved, SkipBenchmark, type Benchmark, type Contender } from './harness';
import { JOB_ENV, TRUE_PATH } from './spawn-contenders';

const CONCURRENCY = 8;

/** Runs `total` operations, `CONCURRENCY` at a time; one sample: the time per operation (ns). */
async function throughput(total: number, op: () => Promise<void>): Promise<number[]> {
  const start = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        next++;
        await op();
      }
    }),
  );
  return [Number(process.hrtime.bigint() - start) / total];
}

export const workerBenchmark: Benchmark = {
  name: 'worker',
  description: `Worker start+finish of /bin/true jobs (cgroup + limits + capture + records) vs child_process.spawn, ${CONCURRENCY} at a time`,
  async run({ quick, dataDir, removeAtExit, progress }) {
    if (process.getuid?.() !== 0) throw new SkipBenchmark('needs root (creates cgroups)');
    const stateDir = await mkdtemp(path.join(dataDir, 'jobworker-bench-worker-'));
    removeAtExit(stateDir);
    const worker = await Worker.open({
      stateDir,
      cgroup: { rootName: `jobworker-bench-${process.pid}` },
      retention: { maxFinishedJobs: 1_000_000 },
    });
    const finished: string[] = [];
    const limits = { cpu: 1, memoryBytes: 256 << 20, pids: 64 };
    const workerContender: Contender = {
      label: 'Worker.start + wait',
      run: (n) =>
        throughput(n, async () => {
          const job = await worker.start({ command: TRUE_PATH, env: JOB_ENV, limits });
          const status = await job.wait();
          if (status.state !== 'exited') throw new Error(`job ${job.id} ended ${status.outcome?.reason}`);
          finished.push(job.id);
        }),
    };
    const childProcess: Contender = {
      label: 'child_process.spawn(stdio:pipe)',
      run: (n) =>
        throughput(
          n,
          () =>
            new Promise<void>((resolve, reject) => {
              const child = spawnChild(TRUE_PATH, [], { stdio: ['ignore', 'pipe', 'pipe'], env: JOB_ENV });
              child.stdout.resume();
              child.stderr.resume();
              child.once('error', reject);
              child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
            }),
        ),
    };
    try {
      const plan = quick ? { warmup: 10, rounds: 2, perRound: 20 } : { warmup: 50, rounds: 12, perRound: 200 };
      const samples = await sampleInterleaved([workerContender, childProcess], plan, async (message) => {
        progress(message);
      });
      // Keep the state directory small between rounds is not needed: removal happens after measuring.
      const perSecond = (label: string) => 1e9 / median(samples.get(label)!);
      progress(`  removing ${finished.length} finished jobs`);
      for (const id of finished) await worker.remove(id);
      return [
        compare({
          name: 'worker.start+finish-vs-child_process',
          unit: 'jobs/s',
          better: 'higher',
          value: perSecond(workerContender.label),
          baseline: `${childProcess.label}, ${CONCURRENCY} at a time`,
          baselineValue: perSecond(childProcess.label),
          target: { minRatio: 1, text: '>= 1x' },
          note: `${CONCURRENCY} jobs in flight; each job: cgroup in every hierarchy with cpu/memory/pids limits, capture, job.json, final stats, cgroup removed; median of ${plan.rounds} rounds of ${plan.perRound}`,
        }),
      ];
    } finally {
      await worker.close();
    }
  },
};
