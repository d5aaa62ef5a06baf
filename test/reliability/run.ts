// `npm run test:reliability`: load, faults, bad input and attackers against a real daemon process.
// Bounded by default (CI); `--soak` runs the long version. Prints a summary table (and, with
// `--markdown`, the rows of docs/reliability.md), writes the figures as JSON with `--json FILE`,
// and exits non-zero if any scenario failed or anything was left behind.
//
//   node dist/test/reliability/run.js [--soak] [--only a,b] [--skip a,b] [--seed N] [--json FILE] [--markdown] [--list]
import { parseArgs as parseCliArgs } from 'node:util';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setMaxListeners } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';

import { findCgroupDirs, sweepDeadTestRootsOnce } from '../helpers/cgroup-jobs';
import { RELIABILITY_PREFIX } from '../helpers/reliability';
import type { Figure, Scenario, ScenarioContext } from './scenario';
import { SCENARIOS } from './scenarios';

interface Outcome {
  name: string;
  group: string;
  title: string;
  ok: boolean;
  error?: string;
  seconds: number;
  figures: Record<string, Figure>;
}

interface Args {
  soak: boolean;
  only: string[] | null;
  skip: string[];
  seed: number;
  json: string | null;
  markdown: boolean;
  list: boolean;
}

/** Options through node:util's parseArgs (no hand-written parser). */
function parseArgs(argv: string[]): Args {
  const { values } = parseCliArgs({
    args: argv,
    options: {
      soak: { type: 'boolean' },
      only: { type: 'string' },
      skip: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'string' },
      markdown: { type: 'boolean' },
      list: { type: 'boolean' },
    },
    strict: true,
  });
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed: expected an integer, got ${values.seed}`);
  return {
    soak: (values.soak ?? false) || process.env.JOBWORKER_RELIABILITY_SOAK === '1',
    only: values.only === undefined ? null : values.only.split(','),
    skip: values.skip === undefined ? [] : values.skip.split(','),
    seed,
    json: values.json ?? null,
    markdown: values.markdown ?? false,
    list: values.list ?? false,
  };
}

async function runScenario(scenario: Scenario, args: Args, runDir: string): Promise<Outcome> {
  const figures: Record<string, Figure> = {};
  const cleanups: (() => unknown)[] = [];
  const workDir = mkdtempSync(path.join(runDir, `${scenario.name}-`));
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // every stream of a scenario listens to it
  const started = Date.now();
  const ctx: ScenarioContext = {
    soak: args.soak,
    seed: args.seed,
    workDir,
    signal: abort.signal,
    log: (message) => process.stderr.write(`  [${scenario.name} ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`),
    figure: (name, value) => {
      figures[name] = value;
    },
    defer: (cleanup) => cleanups.push(cleanup),
  };
  const timeoutMs = scenario.timeoutMs(args.soak);
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      scenario.run(ctx),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          abort.abort(new Error('time is up'));
          reject(new Error(`timed out after ${timeoutMs / 1000} s`));
        }, timeoutMs);
      }),
    ]);
  } catch (e) {
    error = e instanceof Error ? (e.stack ?? e.message) : String(e);
  } finally {
    clearTimeout(timer);
    abort.abort(new Error('scenario over'));
  }
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (e) {
      error ??= `cleanup failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  rmSync(workDir, { recursive: true, force: true });
  return { name: scenario.name, group: scenario.group, title: scenario.title, ok: error === undefined, ...(error === undefined ? {} : { error }), seconds: (Date.now() - started) / 1000, figures };
}

/** What a run must not leave: cgroups, mounts, child processes. */
async function leftovers(runDir: string): Promise<string[]> {
  const problems: string[] = [];
  // Children may take a moment to be reaped after their scenario's cleanup.
  for (let i = 0; i < 50; i++) {
    if (childrenOfThisProcess().length === 0) break;
    await delay(100);
  }
  const cgroups = findCgroupDirs(RELIABILITY_PREFIX);
  if (cgroups.length > 0) problems.push(`cgroups left: ${cgroups.join(', ')}`);
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((line) => line.split(' ')[1]?.startsWith(runDir));
  if (mounts.length > 0) problems.push(`mounts left: ${mounts.join('; ')}`);
  const children = childrenOfThisProcess();
  if (children.length > 0) problems.push(`child processes left: ${children.join(', ')}`);
  return problems;
}

function childrenOfThisProcess(): string[] {
  const found: string[] = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid) found.push(`${entry} (${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))})`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function formatFigures(figures: Record<string, Figure>): string {
  return Object.entries(figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(22)} ${s.group.padEnd(10)} ${s.title}\n`);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('test:reliability needs root (real cgroups, a daemon running jobs, mounts)\n');
    process.exitCode = 1;
    return;
  }
  const selected = SCENARIOS.filter((s) => (args.only === null || args.only.includes(s.name)) && !args.skip.includes(s.name));
  const unknown = [...(args.only ?? []), ...args.skip].filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (--list shows them)`);

  await sweepDeadTestRootsOnce(); // what killed earlier runs left
  const runDir = mkdtempSync(path.join(tmpdir(), `${RELIABILITY_PREFIX}-`));
  const started = Date.now();
  process.stderr.write(`reliability: ${selected.length} scenarios, ${args.soak ? 'soak' : 'bounded'}, seed ${args.seed}\n`);
  const outcomes: Outcome[] = [];
  for (const scenario of selected) {
    process.stderr.write(`- ${scenario.name}: ${scenario.title}\n`);
    const outcome = await runScenario(scenario, args, runDir);
    outcomes.push(outcome);
    process.stderr.write(`  ${outcome.ok ? 'ok' : 'FAILED'} in ${outcome.seconds.toFixed(1)} s: ${formatFigures(outcome.figures)}\n`);
    if (outcome.error !== undefined) process.stderr.write(`  ${outcome.error.replace(/\n/g, '\n  ')}\n`);
  }
  const problems = await leftovers(runDir);
  rmSync(runDir, { recursive: true, force: true });
  const total = (Date.now() - started) / 1000;

  const width = Math.max(...outcomes.map((o) => o.name.length), 8);
  process.stdout.write(`\nreliability summary (${args.soak ? 'soak' : 'bounded'}, seed ${args.seed}, ${total.toFixed(0)} s)\n`);
  for (const o of outcomes) {
    process.stdout.write(`${o.ok ? 'PASS' : 'FAIL'}  ${o.name.padEnd(width)}  ${o.seconds.toFixed(1).padStart(6)} s  ${formatFigures(o.figures)}\n`);
  }
  for (const problem of problems) process.stdout.write(`LEAK  ${problem}\n`);
  const failed = outcomes.filter((o) => !o.ok).length;
  process.stdout.write(`${outcomes.length - failed} passed, ${failed} failed\n`);
  if (args.markdown) {
    process.stdout.write('\n| scenario | result | figures | time |\n|---|---|---|---|\n');
    for (const o of outcomes) {
      process.stdout.write(`| ${o.title} (\`${o.name}\`) | ${o.ok ? 'pass' : 'FAIL'} | ${formatFigures(o.figures)} | ${o.seconds.toFixed(0)} s |\n`);
    }
  }
  if (args.json !== null) {
    writeFileSync(args.json, `${JSON.stringify({ soak: args.soak, seed: args.seed, seconds: total, outcomes, leftovers: problems }, null, 2)}\n`);
  }
  process.exitCode = failed > 0 || problems.length > 0 ? 1 : 0;
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
