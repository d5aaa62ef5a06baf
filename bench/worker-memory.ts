// Daemon memory per idle running job, at 1,000 and 10,000 concurrent `sleep` jobs, measured in a
// child Node process, against the same number of idle children held by child_process.spawn.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { compare, SkipBenchmark, type Benchmark, type Row } from './harness';
import type { MemoryChildConfig, MemoryChildReport } from './worker-memory-child';

const BUDGET_KIB = 32;

function runChild(config: MemoryChildConfig): Promise<MemoryChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(__dirname, 'worker-memory-child.js'), JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(JSON.parse(out) as MemoryChildReport) : reject(new Error(`memory child exited ${code}`))));
  });
}

export const workerMemoryBenchmark: Benchmark = {
  name: 'worker-memory',
  description: 'daemon memory per idle running job (1,000 and 10,000 sleep jobs) vs child_process',
  async run({ quick, dataDir, progress }) {
    if (process.getuid?.() !== 0) throw new SkipBenchmark('needs root (creates cgroups)');
    const rows: Row[] = [];
    for (const jobs of quick ? [200] : [1000, 10_000]) {
      progress(`  ${jobs} idle jobs`);
      const report = await runChild({ jobs, dataDir });
      const kib = report.workerBytesPerJob / 1024;
      rows.push(
        compare({
          name: `worker-memory.${report.jobs}-jobs-vs-budget`,
          unit: 'KiB/job',
          better: 'lower',
          value: kib,
          baseline: `budget ${BUDGET_KIB} KiB/job`,
          baselineValue: BUDGET_KIB,
          target: { minRatio: 1, text: `<= ${BUDGET_KIB} KiB/job` },
          note:
            `RSS growth after a full GC over ${report.jobs} running sleep jobs (started in ${report.workerStartSeconds.toFixed(1)} s)` +
            (report.jobs < report.requested ? `; only ${report.jobs} of ${report.requested}: RLIMIT_NOFILE could not be raised past its hard limit here (no CAP_SYS_RESOURCE)` : ''),
        }),
        compare({
          name: `worker-memory.${report.jobs}-jobs-vs-child_process`,
          unit: 'KiB/job',
          better: 'lower',
          value: kib,
          baseline: `child_process.spawn(stdio:pipe), ${report.jobs} idle children`,
          baselineValue: report.childProcessBytesPerJob / 1024,
          note: 'what Node itself holds per idle child with piped output; informational',
        }),
      );
    }
    return rows;
  },
};
