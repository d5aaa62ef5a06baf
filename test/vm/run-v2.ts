// `npm run test:v2`: runs the root-only suites listed in suites.ts inside a VM whose kernel has ONLY
// cgroup2 mounted at /sys/fs/cgroup, in two layouts (test process in the root cgroup, and in a
// delegated non-root cgroup), and fails unless every file passed in every layout.
//
// Host → VM: a read-only 9p export of the host root (the VM runs the host's node, dist/ and
// build/Release/jobworker.node), config.json and start.sh in the control directory.
// VM → host: the serial console (streamed here live) and, authoritatively, logs/ and summary.json in
// the control directory (a read-write 9p export). No summary, an incomplete one, or a VM killed
// by the deadline is a failure.
//
// Settings (environment, all optional):
//   JOBWORKER_V2_SUITES     comma-separated globs instead of suites.ts (e.g. one file while iterating)
//   JOBWORKER_V2_LAYOUTS    root,delegated (default: both)
//   JOBWORKER_V2_TIMEOUT_S  whole-VM deadline (default 1500)
//   JOBWORKER_V2_FILE_TIMEOUT_S  per test file (default 300)
//   JOBWORKER_V2_CPUS / JOBWORKER_V2_MEMORY_MB  VM size (default 2 / 4096: /tmp is a tmpfs of half of it)
//   JOBWORKER_V2_QEMU_CPU   qemu -cpu model (default Nehalem under emulation, host with KVM)
//   JOBWORKER_V2_ACCEL      kvm or tcg (default: kvm only if /dev/kvm exists and the CPU has vmx/svm)
//   JOBWORKER_V2_KERNEL_PKG another Debian kernel package (default: what linux-image-amd64 depends on)
//   JOBWORKER_V2_VERBOSE=1  kernel messages and init steps on the console
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import {
  HarnessError,
  VM_MODULES,
  buildInitramfs,
  createDisks,
  ensureBusybox,
  ensureHostTools,
  ensureKernel,
  log,
  resolveModules,
  which,
} from './assets';
import { globFiles } from './glob';
import { LAYOUTS, fileRuns, isLayout, type FileResult, type Layout, type VmConfig, type VmSummary } from './protocol';
import { bootVm, defaultCpuModel, qemuArgs, type VmOutcome, type VmSpec } from './qemu';
import { bootWithResume } from './resume';
import { V2_SUITES } from './suites';

const REPO = path.resolve(__dirname, '..', '..', '..');
const CACHE = path.join(REPO, 'test', 'vm', '.cache');
const RUNS_KEPT = 5;
/** One fresh VM after a stall; a second stall fails the run. */
const MAX_BOOTS = 2;

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new HarnessError(`${name}=${raw}: expected a positive number`);
  return value;
}

function layoutsFromEnv(): Layout[] {
  const raw = process.env.JOBWORKER_V2_LAYOUTS;
  if (!raw) return [...LAYOUTS];
  const layouts = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const l of layouts) if (!isLayout(l)) throw new HarnessError(`JOBWORKER_V2_LAYOUTS: unknown layout ${l} (have: ${LAYOUTS.join(', ')})`);
  return layouts as Layout[];
}

/**
 * Caller variables the tests see too: NODE_OPTIONS, NODE_DEBUG and JOBWORKER_*, except the
 * harness's own JOBWORKER_V2_* and JOBWORKER_TEST_CGROUP_ROOT (a host cgroup path, meaningless in
 * the VM, where each test process is alone in its cgroup and needs no delegated root). The
 * variables the VM sets itself (see inner.ts) win over these.
 */
function passThroughEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('JOBWORKER_V2_') || name === 'JOBWORKER_TEST_CGROUP_ROOT') continue;
    if (name === 'NODE_OPTIONS' || name === 'NODE_DEBUG' || name.startsWith('JOBWORKER_')) out[name] = value;
  }
  return out;
}

function newRunDir(): string {
  const runs = path.join(CACHE, 'runs');
  mkdirSync(runs, { recursive: true });
  const old = readdirSync(runs).sort();
  for (const dir of old.slice(0, Math.max(0, old.length - (RUNS_KEPT - 1)))) rmSync(path.join(runs, dir), { recursive: true, force: true });
  const dir = path.join(runs, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  mkdirSync(dir);
  return dir;
}

/**
 * KVM only where the CPU advertises virtualisation: a /dev/kvm without vmx/svm (as in the firecracker
 * VMs here) opens fine but never runs a guest instruction.
 */
function chooseAccel(): 'kvm' | 'tcg' {
  const forced = process.env.JOBWORKER_V2_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (forced) throw new HarnessError(`JOBWORKER_V2_ACCEL=${forced}: expected kvm or tcg`);
  const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  return existsSync('/dev/kvm') && /\b(vmx|svm)\b/.test(flags) ? 'kvm' : 'tcg';
}

function readIfExists(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const seconds = (ms: number | undefined): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)} s`);

function printReport(results: readonly FileResult[]): void {
  const width = Math.max(...results.map((r) => r.file.length));
  log('results:');
  for (const r of results) {
    const c = r.counts;
    const what = c ? `${c.tests} tests, ${c.pass} pass, ${c.fail} fail, ${c.skipped} skipped${c.cancelled ? `, ${c.cancelled} cancelled` : ''}` : 'no test summary';
    const exit = r.timedOut ? 'TIMED OUT' : r.exitCode === 0 ? '' : `exit ${r.exitCode ?? r.signal}`;
    const extra = [
      exit,
      r.strayProcesses.length ? `${r.strayProcesses.length} processes left running` : '',
      r.leftoverCgroups.some((x) => x.populated) ? 'populated cgroups left behind' : '',
      r.leftoverCgroups.length && !r.leftoverCgroups.some((x) => x.populated) ? `WARN: ${r.leftoverCgroups.length} empty cgroups left behind` : '',
    ].filter(Boolean);
    log(`  ${r.passed ? 'PASS' : 'FAIL'}  ${r.layout.padEnd(9)} ${r.file.padEnd(width)}  ${seconds(r.durationMs).padStart(8)}  ${what}${extra.length ? `  [${extra.join('; ')}]` : ''}`);
  }
}

async function main(): Promise<number> {
  const t0 = Date.now();
  const timings: [string, number][] = [];
  const phase = <T>(name: string, fn: () => T): T => {
    const start = Date.now();
    try {
      return fn();
    } finally {
      timings.push([name, Date.now() - start]);
    }
  };

  if (process.platform !== 'linux' || process.arch !== 'x64') throw new HarnessError('needs an x86-64 Linux host');
  const layouts = layoutsFromEnv();
  const patterns = process.env.JOBWORKER_V2_SUITES ? process.env.JOBWORKER_V2_SUITES.split(',').map((s) => s.trim()) : V2_SUITES;
  const files = globFiles(REPO, patterns);
  if (files.length === 0) throw new HarnessError(`no test file matches ${patterns.join(', ')}: run "npx tsc -p ." first`);
  for (const required of ['dist/test/vm/inner.js', 'build/Release/jobworker.node']) {
    if (!existsSync(path.join(REPO, required))) throw new HarnessError(`${required} is missing: build first (npm install / npx tsc -p .)`);
  }
  log(`suites (${files.length} files × ${layouts.join(' + ')}): ${files.join(' ')}`);

  phase('host packages', ensureHostTools);
  const kernel = phase('kernel', () => ensureKernel(CACHE));
  const busybox = phase('busybox', () => ensureBusybox(CACHE));
  log(`kernel ${kernel.release} (${kernel.pkg}${kernel.downloaded ? ', downloaded' : ', cached'})`);

  const runDir = newRunDir();
  const initramfs = path.join(runDir, 'initramfs.cpio');
  phase('initramfs', () => {
    const modules = resolveModules(kernel.modulesDir, VM_MODULES);
    buildInitramfs({ busybox: busybox.path, initScript: path.join(REPO, 'test', 'vm', 'init.sh'), modules, workDir: runDir, output: initramfs });
  });

  const qemu = which('qemu-system-x86_64');
  if (!qemu) throw new HarnessError('qemu-system-x86_64 not found');
  const accel = chooseAccel();
  const cpuModel = process.env.JOBWORKER_V2_QEMU_CPU || defaultCpuModel(accel);
  const config: VmConfig = {
    repoDir: REPO,
    nodePath: process.execPath,
    layouts,
    files,
    emulated: accel === 'tcg',
    fileTimeoutMs: envNumber('JOBWORKER_V2_FILE_TIMEOUT_S', 300) * 1000,
    extraEnv: passThroughEnv(),
  };
  const runs = fileRuns(config);
  const cpus = envNumber('JOBWORKER_V2_CPUS', 2);
  const memoryMiB = envNumber('JOBWORKER_V2_MEMORY_MB', 4096);
  // The 14 files in both layouts take ~8 min under TCG on a quiet machine and over 12 on a busy one
  // (a run was killed at 720 s inside its last file, every file passing): the deadline is for hangs.
  const timeoutMs = envNumber('JOBWORKER_V2_TIMEOUT_S', 1500) * 1000;
  log(`booting: ${cpus} vCPUs (${accel === 'kvm' ? 'KVM' : `TCG emulation, no KVM, -cpu ${cpuModel}`}), ${memoryMiB} MiB, deadline ${timeoutMs / 1000} s; run dir ${path.relative(REPO, runDir)}`);

  /** One VM: its own control directory and fresh disks; the file runs from `resumeAt` on. */
  const boot = async (
    attempt: number,
    resumeAt: number,
  ): Promise<{ outcome: VmOutcome; summary?: VmSummary; controlDir: string; results: FileResult[]; stalled?: string }> => {
    const controlDir = path.join(runDir, attempt === 1 ? 'control' : `control-${attempt}`);
    mkdirSync(controlDir);
    const disks = phase(attempt === 1 ? 'disks' : `disks (VM ${attempt})`, () => createDisks(runDir));
    writeFileSync(path.join(controlDir, 'config.json'), `${JSON.stringify({ ...config, resumeAt }, null, 2)}\n`);
    // init.sh mounts the checkout at this path (busybox sh reads a plain file more easily than JSON).
    writeFileSync(path.join(controlDir, 'repo-dir'), REPO);
    // Runs inside the VM, chrooted into the host's root, from init.sh.
    writeFileSync(
      path.join(controlDir, 'start.sh'),
      `cd ${shellQuote(REPO)} && exec ${shellQuote(process.execPath)} ${shellQuote(path.join(REPO, 'dist/test/vm/inner.js'))} /run/jobworker-vm\n`,
    );
    const spec: VmSpec = {
      kernel: kernel.vmlinuz,
      initramfs,
      controlDir,
      repoDir: REPO,
      rawDisk: disks.raw,
      fsDisk: disks.fs,
      cpus,
      memoryMiB,
      accel,
      cpuModel,
      verbose: process.env.JOBWORKER_V2_VERBOSE === '1',
      timeoutMs,
      shutdownGraceMs: 60_000,
      silenceMs: 120_000,
      consoleLog: path.join(runDir, attempt === 1 ? 'console.log' : `console-${attempt}.log`),
    };
    if (spec.verbose) log(`${qemu} ${qemuArgs(spec).map(shellQuote).join(' ')}`);
    const outcome = await bootVm(qemu, spec, (line) => process.stdout.write(`${line}\n`));
    // The disk images are big and rebuilt every boot; logs stay for a look afterwards.
    for (const file of [disks.raw, disks.fs]) rmSync(file, { force: true });
    let summary: VmSummary | undefined;
    try {
      summary = JSON.parse(readFileSync(path.join(controlDir, 'summary.json'), 'utf8')) as VmSummary;
    } catch {
      summary = undefined;
    }
    return { outcome, summary, controlDir, results: summary?.results ?? [], ...(outcome.stalled === undefined ? {} : { stalled: outcome.stalled }) };
  };

  // A VM that stalls (its runner or its whole kernel stops, seen once under TCG with no trace) is
  // killed and the file runs from the one it stalled in are done once more in a fresh VM. A test
  // that hangs is not a stall: the runner's per-file timeout fails it. Twice stalled fails.
  const resumed = await bootWithResume<FileResult, Awaited<ReturnType<typeof boot>>>(runs, MAX_BOOTS, boot, log);
  const { results, notes } = resumed;
  rmSync(initramfs, { force: true });
  const { outcome, summary, controlDir } = resumed.last;

  const problems: string[] = [];
  if (outcome.timedOut) problems.push(`the VM did not finish within ${timeoutMs / 1000} s (killed)`);
  if (resumed.failed) problems.push(`the VM stalled ${resumed.stalls === 1 ? 'once' : `${resumed.stalls} times`}: ${notes.join('; ')}`);
  if (outcome.fatal) problems.push(`VM init failed: ${outcome.fatal}`);
  if (!summary) {
    if (!outcome.stalled) problems.push('the VM produced no summary.json');
  } else if (!summary.complete && !outcome.timedOut && !outcome.stalled) {
    problems.push(
      summary.error
        ? `the runner in the VM stopped early: ${summary.error}`
        : `the VM went down before the runner finished (qemu exit ${outcome.exitCode ?? outcome.signal}): see the console above (kernel panic?)`,
    );
  }
  if (results.length !== runs.length) problems.push(`${results.length} of ${runs.length} file runs reported`);
  const failed = results.filter((r) => !r.passed);
  if (failed.length > 0) problems.push(`${failed.length} file runs failed: ${failed.map((r) => `${r.file} (${r.layout})`).join(', ')}`);
  if (results.length > 0) printReport(results);

  // Files written into the overlay (the host root, read-only underneath): nothing should need that.
  const overlayWrites = readIfExists(path.join(controlDir, 'overlay-writes.txt')).split('\n').filter(Boolean);
  if (overlayWrites.length > 0) {
    log(`note: ${overlayWrites.length} files written outside /tmp, /var/tmp and /run (into the discarded overlay): ${overlayWrites.slice(0, 8).join(' ')}${overlayWrites.length > 8 ? ' …' : ''}`);
  }

  const testsMs = outcome.doneMs !== undefined && outcome.readyMs !== undefined ? outcome.doneMs - outcome.readyMs : undefined;
  const phases = [
    ...timings.map(([name, ms]) => `${name} ${seconds(ms)}`),
    `boot to runner ${seconds(outcome.readyMs)}`,
    `tests ${seconds(testsMs)}`,
    `VM total ${seconds(outcome.totalMs)}`,
    `overall ${seconds(Date.now() - t0)}`,
  ];
  log(`timings${notes.length > 0 ? ' (of the last VM)' : ''}: ${phases.join(', ')}`);
  log(`logs: ${path.relative(REPO, runDir)}/ (console*.log, control*/logs/, control*/summary.json, control*/dmesg.txt)`);

  const totals = results.reduce(
    (acc, r) => ({
      tests: acc.tests + (r.counts?.tests ?? 0),
      fail: acc.fail + (r.counts?.fail ?? 0),
      cancelled: acc.cancelled + (r.counts?.cancelled ?? 0),
      skipped: acc.skipped + (r.counts?.skipped ?? 0),
    }),
    { tests: 0, fail: 0, cancelled: 0, skipped: 0 },
  );
  const scope = `${results.filter((r) => r.passed).length}/${runs.length} file runs passed (${files.length} files × ${layouts.join(' + ')}), ${totals.tests} tests, ${totals.fail} failed, ${totals.cancelled} cancelled, ${totals.skipped} skipped, kernel ${summary?.kernel ?? kernel.release}, pure cgroup v2`;
  if (problems.length > 0) {
    for (const p of problems) log(`FAILURE: ${p}`);
    log(`test:v2 FAILED: ${scope}`);
    return 1;
  }
  if (outcome.killedAfterDone) log('note: the VM had to be killed after the runner finished (poweroff hung); results are complete');
  for (const note of notes) log(`note: ${note}`);
  log(`test:v2 PASSED: ${scope}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof HarnessError) log(`FAILURE: ${error.message}`);
    else console.error(error);
    log('test:v2 FAILED');
    process.exit(1);
  },
);
