// Run by spawn-heap.ts in its own Node process (a big --max-old-space-size, --expose-gc): fills the
// JS heap with ~N MiB of reachable small objects, then measures spawn+exit for the addon and for
// child_process.spawn. Prints one JSON line (HeapChildReport) on stdout; progress goes to stderr.
import { readFileSync } from 'node:fs';

import { MIB, median, sampleInterleaved, type SamplingPlan } from './harness';
import { addonContender, childProcessContender, LABEL_ADDON, LABEL_CP_PIPE } from './spawn-contenders';

export interface HeapChildConfig {
  fillMiB: number;
  logDir: string;
  plan: SamplingPlan;
  /** Operations per round and warm-up for child_process, which is ~100x slower with a big heap. */
  childProcessPerRound: number;
  childProcessWarmup: number;
}

export interface HeapChildReport {
  heapUsedBytes: number;
  rssBytes: number;
  /** Lines in /proc/self/maps: a fork's cost grows with these as well as with the RSS. */
  mappings: number;
  addonMedianNs: number;
  addonSamples: number;
  childProcessMedianNs: number;
  childProcessSamples: number;
  /** Just the spawn call (until the child has exec'd), big heap. */
  addonCallMedianNs: number;
  childProcessCallMedianNs: number;
  /** The same two, measured in this process before its heap was filled. */
  smallHeap: { rssBytes: number; addonMedianNs: number; childProcessMedianNs: number };
}

// Small linked objects (some with their own strings), like a daemon's registry of records: V8 keeps
// them in 256 KiB pages, each its own mapping, so the process ends up with ~10,000 mappings, and a
// fork has to copy every one of them (2 GiB held as a few big arrays would be ~40x cheaper to fork).
const OBJECTS_PER_CHUNK = 16384;

interface Item {
  id: number;
  seed: number;
  label: string | null;
  next: Item | null;
}

const retained: Item[][] = [];

function chunk(seed: number): Item[] {
  const items = new Array<Item>(OBJECTS_PER_CHUNK);
  for (let i = 0; i < OBJECTS_PER_CHUNK; i++) {
    const id = seed * OBJECTS_PER_CHUNK + i;
    items[i] = { id, seed, label: i % 8 === 0 ? `item-${id}` : null, next: null };
  }
  for (let i = 1; i < OBJECTS_PER_CHUNK; i++) items[i - 1]!.next = items[i]!;
  return items;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('spawn-heap-child needs --expose-gc');
  gc();
}

function fill(targetBytes: number): void {
  let seed = 0;
  for (;;) {
    for (let i = 0; i < 16; i++) retained.push(chunk(seed++));
    if (process.memoryUsage().heapUsed >= targetBytes) {
      collect();
      if (process.memoryUsage().heapUsed >= targetBytes) return;
    }
  }
}

function countMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.length > 0).length;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as HeapChildConfig;
  const progress = (message: string): void => void process.stderr.write(`${message}\n`);
  const addon = addonContender(config.logDir);

  // First with the heap Node starts with, so the growth is measured in one process and one run.
  progress('  before filling the heap:');
  const small = await sampleInterleaved([addon, childProcessContender('pipe')], config.plan, progress);
  const smallRss = process.memoryUsage().rss;

  const started = Date.now();
  fill(config.fillMiB * MIB);
  collect();
  const filled = process.memoryUsage();
  progress(
    `  heap filled in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
      `heapUsed ${(filled.heapUsed / MIB).toFixed(0)} MiB, rss ${(filled.rss / MIB).toFixed(0)} MiB, ` +
      `${countMappings()} mappings`,
  );

  const addonCalls: number[] = [];
  const childProcessCalls: number[] = [];
  const bigHeapAddon = addonContender(config.logDir, addonCalls);
  const childProcess = childProcessContender('pipe', childProcessCalls);
  childProcess.perRound = config.childProcessPerRound;
  childProcess.warmup = config.childProcessWarmup;
  const samples = await sampleInterleaved([bigHeapAddon, childProcess], config.plan, progress);

  collect();
  const after = process.memoryUsage();
  const report: HeapChildReport = {
    heapUsedBytes: after.heapUsed,
    rssBytes: after.rss,
    mappings: countMappings(),
    addonMedianNs: median(samples.get(LABEL_ADDON)!),
    addonSamples: samples.get(LABEL_ADDON)!.length,
    childProcessMedianNs: median(samples.get(LABEL_CP_PIPE)!),
    childProcessSamples: samples.get(LABEL_CP_PIPE)!.length,
    // The call times were recorded during the warm-up too: keep those of the measured rounds.
    addonCallMedianNs: median(addonCalls.slice(-samples.get(LABEL_ADDON)!.length)),
    childProcessCallMedianNs: median(childProcessCalls.slice(-samples.get(LABEL_CP_PIPE)!.length)),
    smallHeap: {
      rssBytes: smallRss,
      addonMedianNs: median(small.get(LABEL_ADDON)!),
      childProcessMedianNs: median(small.get(LABEL_CP_PIPE)!),
    },
  };
  // The heap must still be live when measured: touching it here keeps it reachable to the end.
  if (retained.length === 0) throw new Error('heap was not filled');
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`spawn-heap-child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
