// spawn+exit of /bin/true from a Node process holding ~2 GiB of live JS heap: the addon (clone3 with
// CLONE_VM, no page tables copied) against child_process.spawn (libuv forks: its cost grows with
// the parent's memory). Measured in a child Node process started with a big --max-old-space-size.
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';

import { compare, MIB, NS_PER_US, type Benchmark } from './harness';
import type { HeapChildConfig, HeapChildReport } from './spawn-heap-child';
import { LABEL_CP_PIPE } from './spawn-contenders';

const FULL_FILL_MIB = 2048;
const QUICK_FILL_MIB = 256;

export const spawnHeapBenchmark: Benchmark = {
  name: 'spawn-heap',
  description: 'spawn+exit of /bin/true with 2 GiB of live JS heap: addon vs child_process.spawn',
  async run({ quick, dataDir, removeAtExit, progress }) {
    const fillMiB = quick ? QUICK_FILL_MIB : FULL_FILL_MIB;
    const config: HeapChildConfig = {
      fillMiB,
      logDir: await mkdtemp(path.join(dataDir, 'jobworker-bench-spawn-heap-')),
      plan: quick ? { warmup: 5, rounds: 2, perRound: 20 } : { warmup: 50, rounds: 24, perRound: 25 },
      childProcessPerRound: quick ? 3 : 2,
      childProcessWarmup: quick ? 1 : 3,
    };
    removeAtExit(config.logDir);
    progress(`  filling ${fillMiB} MiB of JS heap in a child Node process`);
    const report = await runHeapChild(config, fillMiB * 2);
    const heapNote = `${(report.heapUsedBytes / MIB).toFixed(0)} MiB live JS heap, RSS ${(report.rssBytes / MIB).toFixed(0)} MiB, ${report.mappings} mappings`;
    return [
      compare({
        name: 'spawn-heap.addon-vs-child_process',
        unit: 'us/op',
        better: 'lower',
        value: report.addonMedianNs / NS_PER_US,
        baseline: `${LABEL_CP_PIPE}, same heap`,
        baselineValue: report.childProcessMedianNs / NS_PER_US,
        target: { minRatio: 20, text: '>= 20x faster' },
        note:
          `measured in a Node process holding ${heapNote}; medians of ${report.addonSamples} (addon) ` +
          `and ${report.childProcessSamples} (child_process) spawns`,
      }),
      compare({
        name: 'spawn-heap.spawn-call-addon-vs-child_process',
        unit: 'us/op',
        better: 'lower',
        value: report.addonCallMedianNs / NS_PER_US,
        baseline: `${LABEL_CP_PIPE} call, same heap`,
        baselineValue: report.childProcessCallMedianNs / NS_PER_US,
        note:
          'the spawn call alone (returns once the child has exec\'d), same spawns: ' +
          'what the heap costs a spawn without /bin/true\'s own run time; no target',
      }),
      compare({
        name: 'spawn-heap.addon-vs-addon-small-heap',
        unit: 'us/op',
        better: 'lower',
        value: report.addonMedianNs / NS_PER_US,
        baseline: `addon, same process before filling`,
        baselineValue: report.smallHeap.addonMedianNs / NS_PER_US,
        note: `~1x means the addon's cost does not grow with the heap (before: RSS ${(report.smallHeap.rssBytes / MIB).toFixed(0)} MiB); no target`,
      }),
      compare({
        name: 'spawn-heap.child_process-vs-small-heap',
        unit: 'us/op',
        better: 'lower',
        value: report.childProcessMedianNs / NS_PER_US,
        baseline: `child_process, same process before filling`,
        baselineValue: report.smallHeap.childProcessMedianNs / NS_PER_US,
        note: 'what the heap costs a fork-based spawn (below 1x: slower with the heap); no target',
      }),
      compare({
        name: 'spawn-heap.live-heap',
        unit: 'MiB',
        better: 'higher',
        value: report.heapUsedBytes / MIB,
        baseline: 'live heap asked for',
        baselineValue: fillMiB,
        target: { minRatio: 0.95, text: 'heap really filled' },
        note: 'heapUsed after a full GC at the end of the measurement: a check on the setup',
      }),
      compare({
        name: 'spawn-heap.rss',
        unit: 'MiB',
        better: 'higher',
        value: report.rssBytes / MIB,
        baseline: 'live heap asked for',
        baselineValue: fillMiB,
        note: 'RSS of the benchmarking process (what a fork has to copy page tables for)',
      }),
    ];
  },
};

function runHeapChild(config: HeapChildConfig, maxOldSpaceMiB: number): Promise<HeapChildReport> {
  const script = path.join(__dirname, 'spawn-heap-child.js');
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [`--max-old-space-size=${maxOldSpaceMiB}`, '--expose-gc', script, JSON.stringify(config)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    // If the benchmark is interrupted, the 2 GiB child must not outlive it.
    const killChild = (): void => void child.kill('SIGKILL');
    process.once('exit', killChild);
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => (stdout += text));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      process.off('exit', killChild);
      if (code !== 0) {
        reject(new Error(`spawn-heap child exited with ${code ?? signal}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim()) as HeapChildReport);
      } catch (error) {
        reject(new Error(`spawn-heap child printed no report: ${String(error)}`));
      }
    });
  });
}
