// A Worker on a temporary state directory and its own cgroup root, removed afterwards.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import type { CgroupDriverOptions } from '../../src/cgroup';
import { Worker, type WorkerOptions } from '../../src/worker';

let counter = 0;

export interface TestWorker {
  worker: Worker;
  stateDir: string;
  /** Options to reopen the same state directory and cgroup root. */
  options: WorkerOptions;
  /** Closes the worker (stopping jobs), checks no job cgroup is left, removes the state dir. */
  cleanup(): Promise<void>;
}

export function testWorkerOptions(label: string, extra: Partial<WorkerOptions> = {}): WorkerOptions {
  const stateDir = mkdtempSync(path.join(tmpdir(), `jobworker-${label}-`));
  return {
    stateDir,
    cgroup: testCgroupOptions(`jobworker-test-${process.pid}-${label}-${counter++}`),
    warn: (message, details) => console.error(`worker warning: ${message}`, details),
    ...extra,
  };
}

export async function openTestWorker(label: string, extra: Partial<WorkerOptions> = {}): Promise<TestWorker> {
  const options = testWorkerOptions(label, extra);
  const worker = await Worker.open(options);
  return {
    worker,
    stateDir: options.stateDir,
    options,
    async cleanup() {
      const leftover = await worker.cgroupDriver.listJobIds();
      await worker.close({ graceMs: 1000 }); // stops jobs and removes the cgroup root
      rmSync(options.stateDir, { recursive: true, force: true });
      assert.deepEqual(leftover, [], 'job cgroups left behind');
    },
  };
}

/**
 * Where a test's job cgroups go: beneath this process's own cgroup, or, when
 * JOBWORKER_TEST_CGROUP_ROOT names a delegated cgroup (pure v2 hosts, where the test runner shares
 * the test's cgroup and controllers cannot be enabled beneath it), beneath that one.
 */
export function testCgroupOptions(name: string): CgroupDriverOptions {
  const delegated = process.env.JOBWORKER_TEST_CGROUP_ROOT;
  return delegated === undefined || delegated === '' ? { rootName: name } : { root: path.posix.join(delegated, name) };
}
