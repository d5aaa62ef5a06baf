// Runs in its own Node process (started by worker-memory.ts with --expose-gc): how much memory does
// the process hold per idle running job? N `sleep` jobs through child_process.spawn first (the
// baseline), then N through the Worker, each measured as the RSS growth after a full GC.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';

import { Worker, type Job } from '../src/worker';

export interface MemoryChildConfig {
  jobs: number;
  dataDir: string;
}

export interface MemoryChildReport {
  jobs: number;
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
  // Four fds per job (pidfd, two pipes, the log): raise this process's own limit (root may).
  execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${config.jobs * 6 + 4096}`]);

  const env = { PATH: '/usr/bin:/bin' };
  let before = settledRss();
  const children: ChildProcess[] = [];
  for (let i = 0; i < config.jobs; i++) {
    const child = spawn('sleep', ['3600'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout!.resume();
    child.stderr!.resume();
    children.push(child);
  }
  const childProcessBytesPerJob = (settledRss() - before) / config.jobs;
  await Promise.all(children.map((child) => new Promise((resolve) => {
    child.once('close', resolve);
    child.kill('SIGKILL');
  })));
  children.length = 0;

  const stateDir = mkdtempSync(path.join(config.dataDir, 'jobworker-bench-memory-'));
  const worker = await Worker.open({ stateDir, cgroup: { rootName: `jobworker-bench-memory-${process.pid}` } });
  try {
    before = settledRss();
    const started = process.hrtime.bigint();
    const jobs: Job[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < config.jobs) {
          next++;
          jobs.push(await worker.start({ command: 'sleep', args: ['3600'], env }));
        }
      }),
    );
    const workerStartSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const workerBytesPerJob = (settledRss() - before) / config.jobs;
    const report: MemoryChildReport = { jobs: config.jobs, workerBytesPerJob, childProcessBytesPerJob, workerStartSeconds };
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
