// What every benchmark shares: the shape of a result, targets, the run context, and a sampler that
// measures several contenders in interleaved rounds so that machine noise hits them all alike.

/** One figure, measured in the same run as its baseline. `ratio` > 1 always means "better than the baseline". */
export interface Result {
  name: string;
  value: number;
  unit: string;
  baseline: string;
  baselineValue: number;
  ratio: number;
}

/** A goal for a result's ratio; shown next to it in the table. */
export interface Target {
  minRatio: number;
  /** How the issue phrases it, e.g. "≥ 1.5× faster". */
  text: string;
}

export interface Row extends Result {
  target?: Target;
  /** Context for a reader of the table (not in --json). */
  note?: string;
}

export interface BenchContext {
  /** Few iterations and small sizes: checks the harness works, figures mean little. */
  quick: boolean;
  /** A fresh scratch directory, removed after the run. */
  scratchDir: string;
  /** Where large files go (the capture benchmark); same filesystem for a job's log and its floor. */
  dataDir: string;
  /** Removes `path` (recursively) when the run ends, even if it is interrupted. */
  removeAtExit(path: string): void;
  /** Progress and diagnostics: always stderr, never stdout. */
  progress(message: string): void;
}

export interface Benchmark {
  /** Selects it on the command line (`npm run bench -- NAME`). */
  name: string;
  description: string;
  run(context: BenchContext): Promise<Row[]>;
}

/** Thrown by a benchmark that cannot run here (e.g. not enough disk): reported, not a failure. */
export class SkipBenchmark extends Error {}

export type Better = 'lower' | 'higher';

/** Builds a row whose ratio says how many times better `value` is than `baselineValue`. */
export function compare(options: {
  name: string;
  unit: string;
  better: Better;
  value: number;
  baseline: string;
  baselineValue: number;
  target?: Target;
  note?: string;
}): Row {
  const { value, baselineValue } = options;
  const ratio = options.better === 'lower' ? baselineValue / value : value / baselineValue;
  const row: Row = {
    name: options.name,
    value,
    unit: options.unit,
    baseline: options.baseline,
    baselineValue,
    ratio,
  };
  if (options.target) row.target = options.target;
  if (options.note) row.note = options.note;
  return row;
}

export function met(row: Row): boolean | undefined {
  return row.target ? row.ratio >= row.target.minRatio : undefined;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Something measured: `run(n)` performs n operations and returns one duration (ns) per operation. */
export interface Contender {
  label: string;
  run(iterations: number): Promise<number[]>;
  /** Overrides the plan's counts for a contender much slower than the others. */
  warmup?: number;
  perRound?: number;
}

export interface SamplingPlan {
  warmup: number;
  rounds: number;
  perRound: number;
}

/**
 * Warms every contender up, then runs `rounds` rounds; in each, every contender runs its
 * operations, in an order that rotates from round to round. Returns all samples (ns) per label.
 */
export async function sampleInterleaved(
  contenders: readonly Contender[],
  plan: SamplingPlan,
  progress: (message: string) => void,
): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(contenders.map((c) => [c.label, []]));
  for (const contender of contenders) {
    const warmup = contender.warmup ?? plan.warmup;
    if (warmup > 0) await contender.run(warmup);
  }
  for (let round = 0; round < plan.rounds; round++) {
    for (let i = 0; i < contenders.length; i++) {
      const contender = contenders[(round + i) % contenders.length]!;
      const taken = await contender.run(contender.perRound ?? plan.perRound);
      samples.get(contender.label)!.push(...taken);
    }
    if ((round + 1) % Math.ceil(plan.rounds / 10) === 0 || round + 1 === plan.rounds) {
      progress(`  round ${round + 1}/${plan.rounds}`);
    }
  }
  return samples;
}

/** Runs `op` `iterations` times in sequence and times each run. */
export async function timeEach(iterations: number, op: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await op();
    out.push(Number(process.hrtime.bigint() - start));
  }
  return out;
}

export const NS_PER_US = 1e3;
export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;
