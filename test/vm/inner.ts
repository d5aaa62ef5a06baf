// The test runner INSIDE the VM (started by init.sh through start.sh, as root, chrooted into the
// host's root with only cgroup2 mounted). Runs every test file once per layout, each alone in its
// own node process, checks that nothing was left running or behind, and writes summary.json.
//
// Usage: node dist/test/vm/inner.js <control dir>
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';

import {
  CONTROL_MOUNT,
  FS_DISK_SERIAL,
  HEARTBEAT_FILE,
  MARKER,
  RAW_DISK_SERIAL,
  SCRATCH_MOUNT,
  WATCHDOG_SID_FILE,
  fileResultPassed,
  fileRuns,
  type FileResult,
  type Layout,
  type TestCounts,
  type VmConfig,
  type VmSummary,
} from './protocol';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_MAGIC = 0x63677270;
const CONTROLLERS = ['cpu', 'memory', 'io', 'pids'];
/** Where the delegated layout puts each test process: /test.slice/<nn>-<file>.service. */
const SLICE = path.join(CGROUP_ROOT, 'test.slice');
const PF_KTHREAD = 0x00200000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const uptime = (): number => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
const say = (text: string): void => void process.stdout.write(`${text}\n`);
const marker = (text: string): void => say(`${MARKER} ${text}`);

function read(file: string): string {
  return readFileSync(file, 'utf8');
}

// ---------------------------------------------------------------------------------------------
// processes and cgroups

interface ProcInfo {
  pid: number;
  state: string;
  describe: string;
}

function watchdogSession(): number | undefined {
  try {
    return Number(read(WATCHDOG_SID_FILE).trim()) || undefined;
  } catch {
    return undefined;
  }
}

/** Every user-space process that is not a zombie, except init.sh's watchdog and its sleeps. */
function userProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  const watchdog = watchdogSession();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = read(`/proc/${entry}/stat`);
      // After "pid (comm) ": state ppid pgrp session tty_nr tpgid flags …
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const flags = Number(fields[6]);
      if (flags & PF_KTHREAD || fields[0] === 'Z' || fields[0] === 'X') continue;
      if (watchdog !== undefined && Number(fields[3]) === watchdog) continue;
      const cmdline = read(`/proc/${entry}/cmdline`).split('\0').filter(Boolean).join(' ');
      const cgroup = read(`/proc/${entry}/cgroup`).trim().replace(/^0::/, '');
      out.push({ pid: Number(entry), state: fields[0]!, describe: `pid ${entry} in ${cgroup}: ${cmdline.slice(0, 200)}` });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Every cgroup directory, as a path relative to the cgroup2 root ("" is the root). */
function allCgroups(dir = CGROUP_ROOT, rel = ''): string[] {
  const out = [rel];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...allCgroups(path.join(dir, entry.name), rel ? `${rel}/${entry.name}` : entry.name));
  }
  return out;
}

function populated(cgroupDir: string): boolean {
  try {
    return /^populated 1$/m.test(read(path.join(cgroupDir, 'cgroup.events')));
  } catch {
    return false;
  }
}

/** cgroup.kill the subtree, wait until it is empty, rmdir it deepest first. */
async function removeCgroupTree(dir: string): Promise<string | undefined> {
  if (!existsSync(dir)) return undefined;
  if (populated(dir)) {
    writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    for (let i = 0; i < 500 && populated(dir); i++) await sleep(10);
  }
  const children = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
  for (const child of children) {
    const problem = await removeCgroupTree(path.join(dir, child.name));
    if (problem) return problem;
  }
  try {
    rmdirSync(dir);
    return undefined;
  } catch (error) {
    return `cannot remove ${dir}: ${(error as Error).message}`;
  }
}

function subtreeControl(dir: string): string[] {
  return read(path.join(dir, 'cgroup.subtree_control')).trim().split(/\s+/).filter(Boolean);
}

function setSubtreeControl(dir: string, wanted: readonly string[]): void {
  const current = subtreeControl(dir);
  const changes = [
    ...wanted.filter((c) => !current.includes(c)).map((c) => `+${c}`),
    ...current.filter((c) => !wanted.includes(c)).map((c) => `-${c}`),
  ];
  if (changes.length > 0) writeFileSync(path.join(dir, 'cgroup.subtree_control'), changes.join(' '));
}

// ---------------------------------------------------------------------------------------------
// environment

function findDisk(serial: string): { device: string; majmin: string } {
  for (const name of readdirSync('/sys/block')) {
    let found: string;
    try {
      found = read(`/sys/block/${name}/serial`).trim();
    } catch {
      continue;
    }
    if (found === serial) return { device: `/dev/${name}`, majmin: read(`/sys/block/${name}/dev`).trim() };
  }
  throw new Error(`no block device with serial ${serial}`);
}

/** Checks the VM is what the tests are promised; returns facts for the report, or throws. */
function checkEnvironment(): Record<string, string> {
  if (statfsSync(CGROUP_ROOT).type !== CGROUP2_MAGIC) throw new Error(`${CGROUP_ROOT} is not cgroup2`);
  const mounts = read('/proc/mounts');
  const v1 = mounts.split('\n').filter((line) => line.split(' ')[2] === 'cgroup');
  if (v1.length > 0) throw new Error(`cgroup v1 hierarchies are mounted:\n${v1.join('\n')}`);
  const controllers = read(path.join(CGROUP_ROOT, 'cgroup.controllers')).trim();
  for (const c of CONTROLLERS) {
    if (!controllers.split(' ').includes(c)) throw new Error(`controller ${c} is not available (have: ${controllers})`);
  }
  const own = read('/proc/self/cgroup').trim();
  if (own !== '0::/') throw new Error(`the runner is not in the root cgroup: ${own}`);
  const scratch = mounts.split('\n').find((line) => line.split(' ')[1] === SCRATCH_MOUNT);
  const fsDisk = findDisk(FS_DISK_SERIAL).device;
  if (scratch?.split(' ')[0] !== `${fsDisk}1`) throw new Error(`${SCRATCH_MOUNT} is not ${fsDisk}1: ${scratch ?? 'not mounted'}`);
  findDisk(RAW_DISK_SERIAL);
  return {
    kernel: read('/proc/sys/kernel/osrelease').trim(),
    cpus: String(readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length),
    memory: /^MemTotal:\s+(.*)$/m.exec(read('/proc/meminfo'))?.[1] ?? '?',
    controllers,
    cgroupMount: mounts.split('\n').find((line) => line.split(' ')[1] === CGROUP_ROOT) ?? '?',
    node: process.version,
  };
}

function testEnvironment(config: VmConfig, layout: Layout): NodeJS.ProcessEnv {
  const raw = findDisk(RAW_DISK_SERIAL);
  const fs = findDisk(FS_DISK_SERIAL);
  return {
    ...config.extraEnv,
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    JOBWORKER_TEST_V2_VM: '1',
    ...(config.emulated ? { JOBWORKER_TEST_EMULATED: '1' } : {}),
    JOBWORKER_TEST_CGROUP_LAYOUT: layout,
    JOBWORKER_TEST_BLOCK_DEVICE: raw.device,
    JOBWORKER_TEST_BLOCK_DEVICE_MAJMIN: raw.majmin,
    JOBWORKER_TEST_BLOCK_DIR: SCRATCH_MOUNT,
    JOBWORKER_TEST_BLOCK_DIR_DISK: fs.device,
    JOBWORKER_TEST_BLOCK_DIR_MAJMIN: fs.majmin,
  };
}

// ---------------------------------------------------------------------------------------------
// one test file

const COUNT_NAMES = ['tests', 'pass', 'fail', 'skipped', 'todo', 'cancelled'] as const;

/** The spec reporter's closing "ℹ tests 12" … lines. */
export function parseCounts(output: string): TestCounts | null {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const counts: TestCounts = { tests: 0, pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
  let seen = 0;
  for (const name of COUNT_NAMES) {
    const matches = [...plain.matchAll(new RegExp(`^ℹ ${name} (\\d+)$`, 'gm'))];
    if (matches.length === 0) continue;
    counts[name] = Number(matches.at(-1)![1]);
    seen++;
  }
  return seen === 0 ? null : counts;
}

function emptyScratch(): void {
  for (const entry of readdirSync(SCRATCH_MOUNT)) {
    if (entry !== 'lost+found') rmSync(path.join(SCRATCH_MOUNT, entry), { recursive: true, force: true });
  }
}

async function runFile(config: VmConfig, layout: Layout, index: number, file: string, controlDir: string): Promise<FileResult> {
  const label = `${String(index + 1).padStart(2, '0')}-${path.basename(file).replace(/\.js$/, '')}`;
  const logRel = path.join('logs', layout, `${label}.log`);
  mkdirSync(path.join(controlDir, 'logs', layout), { recursive: true });
  const logFd = openSync(path.join(controlDir, logRel), 'w');
  emptyScratch();

  // Where the test process starts.
  let serviceDir: string | undefined;
  if (layout === 'delegated') {
    setSubtreeControl(CGROUP_ROOT, CONTROLLERS);
    mkdirSync(SLICE, { recursive: true });
    setSubtreeControl(SLICE, CONTROLLERS);
    serviceDir = path.join(SLICE, `${label}.service`);
    mkdirSync(serviceDir);
  }
  const rootControl = subtreeControl(CGROUP_ROOT);
  const cgroupsBefore = new Set(allCgroups());
  const processesBefore = new Set(userProcesses().map((p) => p.pid));

  const nodeArgs = ['--test-reporter=spec', file];
  // Delegated: the shell moves itself into the service cgroup, then becomes node, alone in there.
  const [command, args] = serviceDir
    ? ['/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', serviceDir, config.nodePath, ...nodeArgs]]
    : [config.nodePath, nodeArgs];

  say(`\n━━ [${layout} ${index + 1}/${config.files.length}] ${file}${serviceDir ? ` (starts in ${serviceDir.slice(CGROUP_ROOT.length)})` : ' (starts in /)'}`);
  marker(`file ${layout} ${file}`);
  const started = Date.now();
  const child = spawn(command, args as string[], {
    cwd: config.repoDir,
    env: testEnvironment(config, layout),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, killable as a whole on timeout
  });
  let output = '';
  const onData = (chunk: Buffer): void => {
    process.stdout.write(chunk);
    writeSync(logFd, chunk);
    output += chunk.toString('utf8');
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    say(`\n━━ ${file}: still running after ${config.fileTimeoutMs / 1000} s: killing it`);
    try {
      if (serviceDir) writeFileSync(path.join(serviceDir, 'cgroup.kill'), '1');
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, config.fileTimeoutMs);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('close', (code, sig) => resolve([code, sig]));
    child.on('error', (error) => {
      onData(Buffer.from(`cannot start ${command}: ${error.message}\n`));
      resolve([null, null]);
    });
  });
  clearTimeout(timer);
  const durationMs = Date.now() - started;

  // Anything still running is a leak: give exits in flight a moment, then record and kill.
  let strays = userProcesses().filter((p) => !processesBefore.has(p.pid));
  for (let i = 0; i < 20 && strays.length > 0; i++) {
    await sleep(50);
    strays = userProcesses().filter((p) => !processesBefore.has(p.pid));
  }
  const strayProcesses = strays.map((p) => p.describe);
  for (const p of strays) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }

  // Cgroups the test created and did not remove.
  const leftoverCgroups = allCgroups()
    .filter((rel) => !cgroupsBefore.has(rel))
    .map((rel) => ({ path: `/${rel}`, populated: populated(path.join(CGROUP_ROOT, rel)) }));
  const cleanup: string[] = [];
  for (const leftover of leftoverCgroups.filter((c) => !leftoverCgroups.some((o) => c.path.startsWith(`${o.path}/`)))) {
    const problem = await removeCgroupTree(path.join(CGROUP_ROOT, leftover.path));
    if (problem) cleanup.push(problem);
  }
  if (serviceDir) {
    const problem = await removeCgroupTree(serviceDir);
    if (problem) cleanup.push(problem);
  }
  try {
    setSubtreeControl(CGROUP_ROOT, rootControl); // as it was before this file (root layout: as at boot)
  } catch (error) {
    cleanup.push(`cannot reset /cgroup.subtree_control: ${(error as Error).message}`);
  }
  closeSync(logFd);

  const result: Omit<FileResult, 'passed'> = {
    layout,
    file,
    log: logRel,
    exitCode,
    signal,
    timedOut,
    durationMs,
    counts: parseCounts(output),
    strayProcesses,
    leftoverCgroups,
  };
  const passed = fileResultPassed(result) && cleanup.length === 0;
  const notes = [
    ...(timedOut ? [`timed out after ${config.fileTimeoutMs / 1000} s`] : []),
    ...strayProcesses.map((p) => `left running (killed): ${p}`),
    ...leftoverCgroups.map((c) => `left behind (removed): cgroup ${c.path}${c.populated ? ' (populated)' : ''}`),
    ...cleanup,
  ];
  for (const note of notes) say(`━━ ${note}`);
  const c = result.counts;
  say(
    `━━ [${layout} ${index + 1}/${config.files.length}] ${passed ? 'PASS' : 'FAIL'} ${file} in ${(durationMs / 1000).toFixed(1)} s` +
      ` (exit ${exitCode ?? signal}${c ? `; tests ${c.tests}, pass ${c.pass}, fail ${c.fail}, skipped ${c.skipped}${c.cancelled ? `, cancelled ${c.cancelled}` : ''}` : ''})`,
  );
  return { ...result, passed };
}

// ---------------------------------------------------------------------------------------------

function writeSummary(controlDir: string, summary: VmSummary): void {
  const file = path.join(controlDir, 'summary.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify(summary, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

async function main(): Promise<void> {
  const controlDir = process.argv[2] ?? CONTROL_MOUNT;
  const config = JSON.parse(read(path.join(controlDir, 'config.json'))) as VmConfig;
  const summary: VmSummary = {
    complete: false,
    kernel: read('/proc/sys/kernel/osrelease').trim(),
    uptimeAtStart: uptime(),
    environment: {},
    results: [],
  };
  marker(`ready uptime=${summary.uptimeAtStart}`);
  // For init.sh's watchdog: a runner whose event loop stops (a spawn blocked in exec, a sync read
  // that never returns) cannot fire its own per-file timeout, so something outside must notice.
  const beat = (): void => {
    try {
      // Whole or not at all: the watchdog must never read a half-written number.
      writeFileSync(`${HEARTBEAT_FILE}.tmp`, `${Math.floor(uptime())}\n`);
      renameSync(`${HEARTBEAT_FILE}.tmp`, HEARTBEAT_FILE);
    } catch {
      // None at all rather than an old one the watchdog would take for a stall: the deadline stays the bound.
      try {
        rmSync(HEARTBEAT_FILE, { force: true });
      } catch {
        // nothing more to do from here
      }
    }
  };
  beat();
  setInterval(beat, 10_000).unref();
  try {
    summary.environment = checkEnvironment();
    say(`VM: kernel ${summary.environment.kernel}, ${summary.environment.cpus} CPUs, ${summary.environment.memory}, node ${process.version}`);
    say(`VM: ${summary.environment.cgroupMount}; controllers: ${summary.environment.controllers}`);
    const runs = fileRuns(config);
    const resumeAt = config.resumeAt ?? 0;
    if (resumeAt > 0) say(`VM: resuming at file run ${resumeAt + 1} of ${runs.length} (the earlier ones ran in a VM that stalled)`);
    for (const [i, { layout, index, file }] of runs.entries()) {
      if (i < resumeAt) continue;
      summary.results.push(await runFile(config, layout, index, file, controlDir));
      writeSummary(controlDir, summary); // partial results survive a later hang
      const lastOfLayout = runs[i + 1]?.layout !== layout;
      if (lastOfLayout && layout === 'delegated') {
        const problem = await removeCgroupTree(SLICE);
        if (problem) throw new Error(problem);
        setSubtreeControl(CGROUP_ROOT, []);
      }
    }
    summary.complete = true;
  } catch (error) {
    summary.error = (error as Error).stack ?? String(error);
    say(`runner error: ${summary.error}`);
  }
  writeSummary(controlDir, summary);
  marker('done');
}

void main();
