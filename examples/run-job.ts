// A runnable example of the embedding API (docs/library.md). As root:
//   npm run build && node dist/examples/run-job.js
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { Worker } from '../src';

async function main(): Promise<void> {
  const worker = await Worker.open({ stateDir: mkdtempSync(path.join(tmpdir(), 'jobworker-example-')) });
  try {
    const job = await worker.start({
      command: 'sh',
      args: ['-c', 'for i in 1 2 3; do echo "step $i"; sleep 0.2; done; echo done >&2'],
      limits: { cpu: 0.5, memoryBytes: 128 << 20, pids: 64 },
      owner: 'example',
    });
    console.log(`started job ${job.id} (pid ${job.status().pid})`);

    // Follow the output live; the loop ends when the job has finished and every byte is delivered.
    for await (const chunk of job.logs({ follow: true })) {
      const target = chunk.stream === 'stderr' ? process.stderr : process.stdout;
      target.write(`[${chunk.stream}] ${chunk.data}`);
    }

    const status = await job.wait();
    console.log(`${status.state}: ${status.outcome?.reason}; cpu ${status.stats?.cpuUsageMicros} µs`);
  } finally {
    await worker.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
