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

/** Finished jobs a Worker keeps by default (RetentionPolicy.maxFinishedJobs). */
const DEFAULT_RETENTION = 1000;

export const workerBenchmark: Benchmark = {
  name: 'worker',
  description: `Worker start+finish of /bin/true jobs (cgroup + limits + capture + records) vs child_process.spawn, ${CONCURRENCY} at a time`,
  async run({ quick, dataDir, removeAtExit, progress }) {
    if (process.getuid?.() !== 0) throw new SkipBenchmark('needs root (creates cgroups)');
    const open = async (name: string, keepAll: boolean): Promise<Worker> => {
      const stateDir = await mkdtemp(path.join(dataDir, `jobworker-bench-worker-${name}-`));
      removeAtExit(stateDir);
      return Worker.open({
        stateDir,
        cgroup: { rootName: `jobworker-bench-${name}-${process.pid}` },
        ...(keepAll ? { retention: { maxFinishedJobs: 1_000_000 } } : {}),
      });
    };
    // A daemon's steady state: default settings, so every job that finishes pushes the oldest
    // finished one out (its record and log removed, the log file kept as a spare for a new job).
    const steady = await open('steady', false);
    // Every record kept: no removals, so every job's log is a newly allocated file.
    const keepAll = await open('keep', true);
    const limits = { cpu: 1, memoryBytes: 256 << 20, pids: 64 };
    const workerContender = (label: string, worker: Worker, warmup?: number): Contender => ({
      label,
      ...(warmup === undefined ? {} : { warmup }),
      run: (n) =>
        throughput(n, async () => {
          const job = await worker.start({ command: TRUE_PATH, env: JOB_ENV, limits });
          const status = await job.wait();
          if (status.state !== 'exited') throw new Error(`job ${job.id} ended ${status.outcome?.reason}`);
        }),
    });
    const plan = quick ? { warmup: 10, rounds: 2, perRound: 20 } : { warmup: 50, rounds: 12, perRound: 200 };
    // Warmed up past the retention limit, so that what is measured is the steady state.
    const steadyContender = workerContender('Worker, default retention', steady, quick ? plan.warmup : DEFAULT_RETENTION + 200);
    const keepAllContender = workerContender('Worker, every record kept', keepAll);
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
      // Two sessions, each against its own baseline: child_process.spawn slows down as this
      // process's memory grows (fork copies its page tables), so the kept-all Worker's records must
      // not weigh on the steady-state comparison.
      const steadySamples = await sampleInterleaved([steadyContender, childProcess], plan, async (message) => progress(`steady state: ${message.trim()}`));
      const steadyRss = process.memoryUsage().rss;
      const keepSamples = await sampleInterleaved([keepAllContender, childProcess], plan, async (message) => progress(`every record kept: ${message.trim()}`));
      const perSecond = (samples: Map<string, number[]>, label: string) => 1e9 / median(samples.get(label)!);
      const baselineOf = (samples: Map<string, number[]>) => ({
        baseline: `${childProcess.label}, ${CONCURRENCY} at a time`,
        baselineValue: perSecond(samples, childProcess.label),
      });
      const each = 'each job: cgroup in every hierarchy with cpu/memory/pids limits, capture to a log, two journal entries (the final one fdatasync\'d), final stats, cgroup removed';
      return [
        compare({
          name: 'worker.start+finish-vs-child_process',
          unit: 'jobs/s',
          better: 'higher',
          value: perSecond(steadySamples, steadyContender.label),
          ...baselineOf(steadySamples),
          target: { minRatio: 1, text: '>= 1x' },
          note: `${CONCURRENCY} jobs in flight, default retention (${DEFAULT_RETENTION} finished jobs kept: each new one removes the oldest), measured after ${DEFAULT_RETENTION + 200} warm-up jobs; ${each}; both in this process (RSS ${Math.round(steadyRss / 2 ** 20)} MiB); median of ${plan.rounds} rounds of ${plan.perRound}`,
        }),
        compare({
          name: 'worker.start+finish-keep-all-vs-child_process',
          unit: 'jobs/s',
          better: 'higher',
          value: perSecond(keepSamples, keepAllContender.label),
          ...baselineOf(keepSamples),
          note: 'the same with every record kept (no removals): each log is a newly allocated file, which on ext4 without a journal costs 0.1-0.25 ms once files churn (see docs/benchmarks.md)',
        }),
      ];
    } finally {
      await steady.close();
      await keepAll.close();
    }
  },
};
