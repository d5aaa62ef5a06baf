// `npm run bench [-- [--json] [--quick] [--check] [--dir DIR] [NAME...]]`: runs the benchmarks in
// registry.ts and prints a table, or one JSON object per result line with --json. Progress goes to
// stderr; with --json, stdout carries nothing but results.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { met, SkipBenchmark, type Benchmark, type Result, type Row } from './harness';
import { benchmarks } from './registry';

interface Options {
  json: boolean;
  quick: boolean;
  check: boolean;
  list: boolean;
  dataDir: string;
  names: string[];
}

const USAGE = `usage: npm run bench -- [options] [NAME...]

  NAME        run only these benchmarks (exact name; else every name containing it)
  --json      one JSON object per result on stdout: {name, value, unit, baseline, baselineValue, ratio}
  --quick     few iterations and small sizes: checks the harness, the figures mean little
  --check     exit with status 1 if a target is missed
  --dir DIR   where job log files and the capture benchmark's 2 GiB files go (default: /var/tmp)
  --list      list the benchmarks and exit
`;

/** Options through node:util's parseArgs (no hand-written parser); a bad one is a UsageError. */
function parseOptions(argv: readonly string[]): Options {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTION_SPEC; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTION_SPEC, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  return {
    json: values.json ?? false,
    quick: values.quick ?? false,
    check: values.check ?? false,
    list: values.list ?? false,
    dataDir: values.dir === undefined ? defaultDataDir() : path.resolve(values.dir),
    names: positionals,
  };
}

const OPTION_SPEC = {
  json: { type: 'boolean' },
  quick: { type: 'boolean' },
  check: { type: 'boolean' },
  list: { type: 'boolean' },
  dir: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

/**
 * Where logs and big files go by default: /var/tmp, on the disk like a daemon's state directory,
 * rather than /tmp, which test suites churn (on ext4, creating files next to many recently deleted
 * ones is slow: see docs/benchmarks.md).
 */
function defaultDataDir(): string {
  return existsSync('/var/tmp') ? '/var/tmp' : tmpdir();
}

function select(names: readonly string[]): Benchmark[] {
  if (names.length === 0) return [...benchmarks];
  const chosen = new Set<Benchmark>();
  for (const name of names) {
    const exact = benchmarks.filter((b) => b.name === name);
    const matches = exact.length > 0 ? exact : benchmarks.filter((b) => b.name.includes(name));
    if (matches.length === 0) {
      throw new UsageError(`no benchmark named ${name}; there are: ${benchmarks.map((b) => b.name).join(', ')}`);
    }
    for (const b of matches) chosen.add(b);
  }
  return benchmarks.filter((b) => chosen.has(b)); // registry order
}

// ---- output ----

function toResult(row: Row): Result {
  const { name, value, unit, baseline, baselineValue, ratio } = row;
  return { name, value: round(value), unit, baseline, baselineValue: round(baselineValue), ratio: round(ratio) };
}

function round(n: number): number {
  return Number(n.toPrecision(6));
}

function formatNumber(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1000) return Math.round(n).toLocaleString('en-US');
  if (abs >= 100) return n.toFixed(0);
  if (abs >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function formatRatio(ratio: number): string {
  return ratio >= 100 ? `${ratio.toFixed(0)}x` : ratio >= 10 ? `${ratio.toFixed(1)}x` : `${ratio.toFixed(2)}x`;
}

function mark(row: Row): string {
  const ok = met(row);
  if (ok === undefined) return '';
  return ok ? 'met' : 'MISSED';
}

function renderTable(rows: readonly Row[], skipped: readonly string[], failed: readonly string[]): string {
  const header = ['benchmark', 'value', 'baseline', 'baseline value', 'ratio', 'target', ''];
  const body = rows.map((row) => [
    row.name,
    `${formatNumber(row.value)} ${row.unit}`,
    row.baseline,
    `${formatNumber(row.baselineValue)} ${row.unit}`,
    formatRatio(row.ratio),
    row.target?.text ?? '',
    mark(row),
  ]);
  const rightAligned = new Set([1, 3, 4]);
  const widths = header.map((h, col) => Math.max(h.length, ...body.map((cells) => cells[col]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, col) => (rightAligned.has(col) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join('  ')
      .trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)];
  const notes = rows.filter((row) => row.note).map((row) => `  ${row.name}: ${row.note}`);
  if (notes.length > 0) out.push('', 'notes:', ...notes);
  if (skipped.length > 0) out.push('', 'skipped:', ...skipped.map((s) => `  ${s}`));
  if (failed.length > 0) out.push('', 'FAILED (details on stderr):', ...failed.map((s) => `  ${s}`));
  return `${out.join('\n')}\n`;
}

function environmentLine(quick: boolean): string {
  const cpu = cpus();
  return (
    `jobworker bench, ${new Date().toISOString()}: node ${process.version}, linux ${release()}, ` +
    `${cpu.length} CPUs (${cpu[0]?.model.trim() ?? 'unknown'})${quick ? ', QUICK mode (figures not meaningful)' : ''}\n` +
    'ratio = how many times better than the baseline (faster, or more throughput); medians, same run.\n\n'
  );
}

// ---- main ----

async function main(): Promise<number> {
  let options: Options;
  let selected: Benchmark[];
  try {
    options = parseOptions(process.argv.slice(2));
    selected = select(options.names);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.list) {
    for (const b of benchmarks) process.stdout.write(`${b.name.padEnd(12)} ${b.description}\n`);
    return 0;
  }

  const scratchDir = mkdtempSync(path.join(tmpdir(), 'jobworker-bench-'));
  const toRemove = [scratchDir];
  const removeAtExit = (p: string): void => void toRemove.push(p);
  const removeScratch = (): void => {
    for (const p of toRemove) rmSync(p, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      removeScratch();
      process.exit(130);
    });
  }
  const progress = (message: string): void => void process.stderr.write(`${message}\n`);
  const rows: Row[] = [];
  const skipped: string[] = [];
  const failed: string[] = [];
  try {
    for (const benchmark of selected) {
      progress(`bench ${benchmark.name}: ${benchmark.description}`);
      const started = Date.now();
      try {
        const produced = await benchmark.run({
          quick: options.quick,
          scratchDir,
          dataDir: options.dataDir,
          removeAtExit,
          progress,
        });
        rows.push(...produced);
        if (options.json) for (const row of produced) process.stdout.write(`${JSON.stringify(toResult(row))}\n`);
        progress(`bench ${benchmark.name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } catch (error) {
        if (error instanceof SkipBenchmark) {
          skipped.push(`${benchmark.name}: ${error.message}`);
          progress(`bench ${benchmark.name}: SKIPPED: ${error.message}`);
        } else {
          failed.push(`${benchmark.name}: ${error instanceof Error ? error.message : String(error)}`);
          progress(`bench ${benchmark.name}: FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        }
      }
    }
  } finally {
    removeScratch();
  }
  if (!options.json) process.stdout.write(environmentLine(options.quick) + renderTable(rows, skipped, failed));
  const missed = rows.filter((row) => met(row) === false);
  if (missed.length > 0) progress(`targets missed: ${missed.map((row) => row.name).join(', ')}`);
  if (failed.length > 0) return 1;
  return options.check && missed.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
