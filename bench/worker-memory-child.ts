// Runs in its own Node process (started by worker-memory.ts with --expose-gc): how much memory does
// the process hold per idle running job? N `sleep` jobs through child_process.spawn first (the
// baseline), then N through the Worker, each measured as the RSS growth after a full GC.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';

import { Worker, type Job } from '../src/worker';

export interface MemoryChildConfig {
  jobs: number;
  dataDir: string;
}

export interface MemoryChildReport {
  jobs: number;
  /** Asked for; more than `jobs` when the fd limit could not be raised. */
  requested: number;
  workerBytesPerJob: number;
  childProcessBytesPerJob: number;
  workerStartSeconds: number;
}

function settledRss(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) gc?.();
  return process.memoryUsage().rss;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2]!) as MemoryChildConfig;
  // Four fds per job (pidfd, two pipes, the log): raise this process's own limit. Root may, unless
  // it lacks CAP_SYS_RESOURCE (some containers): then as many jobs as the hard limit allows.
  let jobs = config.jobs;
  try {
    execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${jobs * 6 + 4096}`], { stdio: 'ignore' });
  } catch {
    const hard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
    execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${hard}:${hard}`]);
    jobs = Math.min(jobs, Math.floor((hard - 1024) / 5));
  }

  const env = { PATH: '/usr/bin:/bin' };
  let before = settledRss();
  const children: ChildProcess[] = [];
  for (let i = 0; i < jobs; i++) {
    const child = spawn('sleep', ['3600'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout!.resume();
    child.stderr!.resume();
    children.push(child);
  }
  const childProcessBytesPerJob = (settledRss() - before) / jobs;
  await Promise.all(children.map((child) => new Promise((resolve) => {
    child.once('close', resolve);
    child.kill('SIGKILL');
  })));
  children.length = 0;

  const stateDir = mkdtempSync(path.join(config.dataDir, 'jobworker-bench-memory-'));
  // One identity ("") runs every job: its running-jobs quota (1,024 by default) is raised to the count.
  const worker = await Worker.open({ stateDir, cgroup: { rootName: `jobworker-bench-memory-${process.pid}` }, identityLimits: { maxRunningJobs: jobs } });
  try {
    before = settledRss();
    const startedAt = process.hrtime.bigint();
    const running: Job[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < jobs) {
          next++;
          running.push(await worker.start({ command: 'sleep', args: ['3600'], env }));
        }
      }),
    );
    const workerStartSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
    const workerBytesPerJob = (settledRss() - before) / jobs;
    const report: MemoryChildReport = { jobs, requested: config.jobs, workerBytesPerJob, childProcessBytesPerJob, workerStartSeconds };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await worker.close({ graceMs: 0 });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
