// Capture throughput: a job writing 2 GiB to stdout into its log, against the floor
// `dd if=/dev/zero bs=1M count=2048 | dd of=FILE bs=1M` with FILE beside the log: the same pipe and
// page-cache work, without framing or an epoll thread. Wall time from spawn to exit, median of rounds.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import * as path from 'node:path';

import { spawnProcess } from '../src/native';
import { compare, GIB, median, MIB, SkipBenchmark, type Benchmark } from './harness';
import { JOB_ENV } from './spawn-contenders';

const FLOOR_LABEL = 'dd | dd of=FILE (floor)';

export const captureBenchmark: Benchmark = {
  name: 'capture',
  description: 'a job writing 2 GiB to stdout into its log vs dd | dd of=FILE beside it',
  async run({ quick, dataDir, removeAtExit, progress }) {
    const mib = quick ? 256 : 2048;
    const rounds = quick ? 1 : 9;
    const bytes = mib * MIB;
    const fsInfo = await statfs(dataDir);
    const free = fsInfo.bavail * fsInfo.bsize;
    const needed = bytes + 2 * GIB; // one big file at a time, plus room for everyone else
    progress(`  ${(free / GIB).toFixed(1)} GiB free in ${dataDir}; each run writes ${(bytes / GIB).toFixed(2)} GiB`);
    if (free < needed) {
      throw new SkipBenchmark(
        `only ${(free / GIB).toFixed(1)} GiB free in ${dataDir}, need ${(needed / GIB).toFixed(1)} GiB (use --dir)`,
      );
    }
    const dir = await mkdtemp(path.join(dataDir, 'jobworker-bench-capture-'));
    removeAtExit(dir);
    const addonSeconds: number[] = [];
    const floorSeconds: number[] = [];
    try {
      for (let round = 0; round < rounds; round++) {
        // Alternate which goes first: writeback of the previous file's pages affects the next.
        const order = round % 2 === 0 ? ['floor', 'addon'] : ['addon', 'floor'];
        for (const which of order) {
          const file = path.join(dir, which === 'addon' ? 'job.log' : 'floor.out');
          const seconds = which === 'addon' ? await captureRun(file, mib) : await floorRun(file, mib);
          await rm(file, { force: true });
          (which === 'addon' ? addonSeconds : floorSeconds).push(seconds);
          progress(`  round ${round + 1}/${rounds} ${which}: ${(bytes / GIB / seconds).toFixed(2)} GiB/s`);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const gibPerSecond = (seconds: number[]): number => bytes / GIB / median(seconds);
    const bestGibPerSecond = (seconds: number[]): number => bytes / GIB / Math.min(...seconds);
    return [
      compare({
        name: 'capture.addon-vs-dd-pipe',
        unit: 'GiB/s',
        better: 'higher',
        value: gibPerSecond(addonSeconds),
        baseline: FLOOR_LABEL,
        baselineValue: gibPerSecond(floorSeconds),
        target: { minRatio: 0.8, text: '>= 80% of floor' },
        note: `${mib} MiB of zeros per run, median of ${rounds} runs each; both files on the filesystem of ${dataDir}`,
      }),
      compare({
        name: 'capture.best-addon-vs-dd-pipe',
        unit: 'GiB/s',
        better: 'higher',
        value: bestGibPerSecond(addonSeconds),
        baseline: `${FLOOR_LABEL}, best run`,
        baselineValue: bestGibPerSecond(floorSeconds),
        note:
          `the fastest of the ${rounds} runs of each: other work on the machine only ever slows a run ` +
          'down, so the best run is the least disturbed one; no target',
      }),
    ];
  },
};

const ddSource = (mib: number): string[] => ['if=/dev/zero', 'bs=1M', `count=${mib}`, 'status=none'];

/**
 * The job: dd to stdout, captured by the addon; seconds until `exited` resolves (all output on
 * disk). Checks that every byte was kept.
 */
export async function captureRun(logPath: string, mib: number): Promise<number> {
  const start = process.hrtime.bigint();
  const proc = spawnProcess({ command: 'dd', args: ddSource(mib), env: JOB_ENV, logPath });
  const exit = await proc.exited;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const close = await proc.closed;
  if (exit.code !== 0) throw new Error(`capture job exited with ${exit.code ?? exit.signal}`);
  if (exit.logBytes < mib * MIB || close.droppedBytes !== 0) {
    throw new Error(`capture lost output: log ${exit.logBytes} bytes, dropped ${close.droppedBytes}`);
  }
  return seconds;
}

/** The floor: the same dd into a pipe, and a second dd copying the pipe into FILE. */
async function floorRun(file: string, mib: number): Promise<number> {
  const script = `dd ${ddSource(mib).join(' ')} | dd of='${file.replace(/'/g, `'\\''`)}' bs=1M status=none`;
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', script], { stdio: 'ignore', env: JOB_ENV });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`floor pipeline exited with ${code ?? signal}`));
    });
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const size = (await stat(file)).size;
  if (size !== mib * MIB) throw new Error(`floor wrote ${size} bytes, expected ${mib * MIB}`);
  return seconds;
}
