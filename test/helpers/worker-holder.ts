// Run as a child process by the crash-recovery test: opens a worker, starts jobs, waits until the
// chatty one's output is all on disk, reports, and then waits to be SIGKILLed.
import type { CgroupDriverOptions } from '../../src/cgroup';
import { Worker } from '../../src/worker';

async function main(): Promise<void> {
  const [stateDir, cgroup] = process.argv.slice(2);
  const worker = await Worker.open({ stateDir: stateDir!, cgroup: JSON.parse(cgroup!) as CgroupDriverOptions });
  const quiet = await worker.start({ command: 'sleep', args: ['1000'] });
  const chatty = await worker.start({ command: 'sh', args: ['-c', 'seq 1 20000; echo done >&2; sleep 1000'] });
  let stderr = '';
  for await (const record of chatty.logs({ follow: true, streams: ['stderr'] })) {
    stderr += record.data.toString();
    if (stderr === 'done\n') break;
  }
  process.stdout.write(`${JSON.stringify({ quiet: quiet.status(), chatty: chatty.status() })}\n`);
  setInterval(() => undefined, 1 << 30); // keep running until killed
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
