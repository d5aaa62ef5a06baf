// Real job cgroups for integration tests: a driver rooted at a per-test-process cgroup
// (jobworker-test-<pid>, beneath this process's own cgroup in every hierarchy), processes spawned
// into a job by the native core, and a sweep that proves nothing was left behind.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { nodeCgroupFs, removeCgroup } from '../../src/cgroup/cgroup-fs';
import { openCgroupDriver, type CgroupDriverOptions, type OpenedCgroupDriver } from '../../src/cgroup/index';
import { UnifiedProcesses } from '../../src/cgroup/unified-processes';
import { spawnProcess, type NativeProcess } from '../../src/native';
import { type CreatedCgroup } from './cgroup-plan';
import { readCapturedOutput, waitForStdout as waitForLogStdout } from './log';

export { createJobCgroup, type CreatedCgroup } from './cgroup-plan';

export const TEST_ROOT_NAME = `jobworker-test-${process.pid}`;
export const JOB_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };

/**
 * The driver under test. On a cgroup v2 host whose test process shares its cgroup with others
 * (the test runner), controllers cannot be enabled beneath it: JOBWORKER_TEST_CGROUP_ROOT then
 * names a delegated cgroup (a cgroup path such as /jobworker-ci) to use instead.
 */
export async function openTestDriver(options: Pick<CgroupDriverOptions, 'sliceLimits'> = {}): Promise<OpenedCgroupDriver> {
  await sweepDeadTestRootsOnce();
  const delegated = process.env.JOBWORKER_TEST_CGROUP_ROOT;
  return delegated === undefined || delegated === ''
    ? openCgroupDriver({ ...options, rootName: TEST_ROOT_NAME })
    : openCgroupDriver({ ...options, root: path.posix.join(delegated, TEST_ROOT_NAME) });
}

/**
 * A cgroup root a test process made: jobworker-test-<pid> or jobworker-rel-<pid> (the reliability
 * suite), alone or followed by -<label>; every helper names its roots so.
 */
const TEST_ROOT = /\/jobworker-(?:test|rel)-(\d+)(?=[-/]|$)/;

/**
 * Removes what test processes that died mid-run (killed, or crashed before their `after` hook)
 * left of their cgroup roots: kills the processes in them, then removes the cgroups deepest first.
 * Only roots named as TEST_ROOT says whose process is gone are touched.
 */
export async function sweepDeadTestRoots(): Promise<void> {
  const stale = findCgroupDirs('/jobworker-').filter((dir) => {
    const match = TEST_ROOT.exec(dir);
    return match !== null && !existsSync(`/proc/${match[1]}`);
  });
  for (const dir of stale) {
    if (!existsSync(path.join(dir, 'cgroup.kill'))) continue; // v1 hierarchies: the unified kill covers them
    const processes = new UnifiedProcesses(nodeCgroupFs, dir);
    if (await processes.populated()) {
      await processes.killAll();
      await processes.waitEmpty(5000);
    }
  }
  for (const dir of stale.sort((a, b) => b.split('/').length - a.split('/').length)) {
    await removeCgroup(nodeCgroupFs, dir).catch(() => undefined);
  }
}

let sweep: Promise<void> | undefined;

/** sweepDeadTestRoots, once per test process: every helper that makes a cgroup root calls it first. */
export function sweepDeadTestRootsOnce(): Promise<void> {
  sweep ??= sweepDeadTestRoots();
  return sweep;
}

/** Destroys every job cgroup left under the driver's root, then removes the root. */
export async function closeTestDriver(driver: OpenedCgroupDriver | undefined): Promise<void> {
  if (driver === undefined) return;
  for (const name of await driver.listJobs()) await (await driver.open(name))?.destroy();
  await driver.releaseRoot();
}

export class JobLogs {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cgroup-test-'));
  #seq = 0;

  next(): string {
    return path.join(this.dir, `job-${this.#seq++}.log`);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface RunningJob {
  proc: NativeProcess;
  log: string;
}

/** Spawns `command` born in the job's cgroups (and joined to its v1 ones before exec). */
export function runInJob(job: CreatedCgroup, logs: JobLogs, command: string, args: string[], cwd?: string): RunningJob {
  const log = logs.next();
  const proc = spawnProcess({ command, args, env: JOB_ENV, logPath: log, ...job.plan.placement, ...(cwd === undefined ? {} : { cwd }) });
  return { proc, log };
}

export async function outputOf(job: RunningJob): Promise<{ stdout: string; stderr: string }> {
  const { stdout, stderr } = await readCapturedOutput(job.log);
  return { stdout: stdout.toString(), stderr: stderr.toString() };
}

/** Resolves once the job's stdout contains `text` (awaits log growth, no polling). */
export function waitForStdout({ proc, log }: RunningJob, text: string): Promise<void> {
  return waitForLogStdout(proc, log, text);
}

/** Every cgroup directory on the host whose path contains `name` (all hierarchies). */
export function findCgroupDirs(name: string, root = '/sys/fs/cgroup'): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // removed meanwhile (other tests run at the same time)
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue; // also skips the cpu -> cpu,cpuacct symlinks
      const child = path.join(dir, entry.name);
      if (child.includes(name)) found.push(child);
      walk(child);
    }
  };
  walk(root);
  return found;
}

/** The kernel's start time of a pid (field 22 of /proc/<pid>/stat), to tell a pid from a reused one. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True if the process that had `startTime` still exists (and is not a zombie). */
export function stillRunning(pid: number, startTime: string | undefined): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] === startTime && fields[0] !== 'Z';
  } catch {
    return false;
  }
}
