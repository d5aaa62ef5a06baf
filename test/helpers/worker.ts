// A Worker on a temporary state directory and its own cgroup root, removed afterwards.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import type { CgroupDriverOptions } from '../../src/cgroup';
import { readProcCgroup, unifiedPathOf } from '../../src/cgroup/proc-cgroup';
import { defaultScratchRoot, Worker, type WorkerOptions } from '../../src/worker';
import { sweepDeadTestRootsOnce } from './cgroup-jobs';

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
  await sweepDeadTestRootsOnce();
  const options = testWorkerOptions(label, extra);
  let worker: Worker;
  try {
    worker = await Worker.open(options);
  } catch (error) {
    rmSync(options.stateDir, { recursive: true, force: true }); // a refused open leaves no directory behind
    rmSync(options.scratch?.root ?? defaultScratchRoot(options.stateDir), { recursive: true, force: true });
    throw error;
  }
  return {
    worker,
    stateDir: options.stateDir,
    options,
    async cleanup() {
      const leftover = await worker.cgroupDriver.listJobs();
      await worker.close({ graceMs: 1000 }); // stops jobs and removes the cgroup root
      const scratchRoot = options.scratch?.root ?? defaultScratchRoot(options.stateDir);
      const scratchLeft = existsSync(scratchRoot) ? readdirSync(scratchRoot) : [];
      const defaultRootLeft = options.scratch?.root === undefined && existsSync(scratchRoot);
      rmSync(options.stateDir, { recursive: true, force: true });
      rmSync(scratchRoot, { recursive: true, force: true });
      assert.deepEqual(leftover, [], 'job cgroups left behind');
      assert.deepEqual(scratchLeft, [], 'scratch directories left behind');
      assert.equal(defaultRootLeft, false, 'a clean close removes its (empty) default scratch root');
      assert.deepEqual([...worker.dynamicUids.inUse], [], 'dynamic uids still held');
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

const CGROUP2_MAGIC = 0x63677270;

/**
 * A cgroup root that this process AND processes it starts can all open workers on. The usual root
 * (beneath our own cgroup) is fine on hybrid hosts and where our cgroup is the root one. On pure
 * cgroup v2 with this process in a non-root cgroup (the VM's delegated layout), a worker in a child
 * process would have to enable controllers in the cgroup we share with it, which cgroup v2 refuses
 * (only leaves hold processes): there, this process moves into a leaf of its own and the workers
 * get an explicit root beside it. cleanup() undoes all of it.
 */
export function sharedCgroupRoot(name: string): { cgroup: CgroupDriverOptions; cleanup(): void } {
  const own = unifiedPathOf(readProcCgroup()) ?? '/';
  const mount = '/sys/fs/cgroup';
  if (statfsSync(mount).type !== CGROUP2_MAGIC || own === '/' || process.env.JOBWORKER_TEST_CGROUP_ROOT) {
    return { cgroup: testCgroupOptions(name), cleanup: () => undefined };
  }
  const ownDir = path.join(mount, own);
  const leaf = path.join(ownDir, `jobworker-test-runner-${process.pid}`);
  mkdirSync(leaf);
  writeFileSync(path.join(leaf, 'cgroup.procs'), String(process.pid));
  const offered = readFileSync(path.join(ownDir, 'cgroup.controllers'), 'utf8').split(/\s+/);
  const enabled = readFileSync(path.join(ownDir, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
  const toEnable = ['cpu', 'memory', 'io', 'pids'].filter((c) => offered.includes(c) && !enabled.includes(c));
  if (toEnable.length > 0) writeFileSync(path.join(ownDir, 'cgroup.subtree_control'), toEnable.map((c) => `+${c}`).join(' '));
  return {
    cgroup: { root: path.posix.join(own, name) },
    cleanup() {
      const base = path.join(ownDir, name);
      if (existsSync(base)) rmdirSync(base);
      if (toEnable.length > 0) writeFileSync(path.join(ownDir, 'cgroup.subtree_control'), toEnable.map((c) => `-${c}`).join(' '));
      writeFileSync(path.join(ownDir, 'cgroup.procs'), String(process.pid));
      rmdirSync(leaf);
    },
  };
}
