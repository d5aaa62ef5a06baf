// Crash recovery: the process holding a Worker is SIGKILLed with jobs running; reopening marks them
// lost, kills and removes their cgroups, and keeps every byte they wrote.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';

import { Worker, type JobStatus } from '../../src/worker';
import { isRunning } from '../helpers/proc';
import { requireRoot } from '../helpers/root';
import { sharedCgroupRoot, testWorkerOptions } from '../helpers/worker';

describe('crash recovery', requireRoot, () => {
  it('jobs of a killed worker become lost, their cgroups go, their logs stay whole', { timeout: 60_000 }, async () => {
    // The worker lives in a child process and is reopened here: both must be able to use the root.
    const shared = sharedCgroupRoot(`jobworker-test-${process.pid}-recovery`);
    const options = testWorkerOptions('recovery', { cgroup: shared.cgroup });
    const holder = spawn(process.execPath, [path.join(__dirname, '..', 'helpers', 'worker-holder.js'), options.stateDir, JSON.stringify(options.cgroup)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(createInterface({ input: holder.stdout! }), 'line')) as [string];
    const before = JSON.parse(line) as { quiet: JobStatus; chatty: JobStatus };
    assert.equal(before.chatty.state, 'running');

    holder.kill('SIGKILL');
    await once(holder, 'exit');
    assert.ok(isRunning(before.quiet.pid!), 'jobs outlive the killed worker');
    // A crash can leave a torn record at the end of a log: simulate one.
    appendFileSync(path.join(options.stateDir, 'logs', `${before.chatty.id}.log`), Buffer.from('JWR1\x01\x00\x00\x00garbage'));
    // …and a torn last journal line.
    appendFileSync(path.join(options.stateDir, 'journal'), '0badc0de {"op":"put","rec');

    const worker = await Worker.open(options);
    try {
      assert.deepEqual(worker.recovery.lost.sort(), [before.quiet.id, before.chatty.id].sort());
      for (const id of [before.quiet.id, before.chatty.id]) {
        const status = worker.job(id).status();
        assert.equal(status.state, 'lost');
        assert.match(status.outcome!.reason, /^lost: /);
      }
      assert.equal(isRunning(before.quiet.pid!), false, 'the lost job was killed');
      assert.equal(isRunning(before.chatty.pid!), false);
      assert.deepEqual(await worker.cgroupDriver.listJobs(), []);

      let stdout = '';
      for await (const record of worker.job(before.chatty.id).logs({ follow: true, streams: ['stdout'] })) stdout += record.data.toString();
      const expected = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('');
      assert.equal(stdout, expected, 'every byte written before the crash is in the log');

      const fresh = await worker.start({ command: 'echo', args: ['new jobs work'] });
      assert.equal((await fresh.wait()).state, 'exited');
    } finally {
      await worker.close();
      shared.cleanup();
      rmSync(options.stateDir, { recursive: true, force: true });
    }
  });
});
