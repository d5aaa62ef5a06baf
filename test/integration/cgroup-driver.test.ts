// The cgroup driver of this host, for real (root): placement, signalling, kill, destroy, orphans,
// and that nothing is ever left behind. Written mode-agnostic: the same assertions hold on hybrid,
// legacy and pure cgroup v2 hosts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CGROUP2_SUPER_MAGIC, type CgroupHost, discoverHost, v1HierarchyOf } from '../../src/cgroup/host';
import { useKillSignaller, type OpenedCgroupDriver } from '../../src/cgroup/index';
import { JobworkerError, ValidationError } from '../../src/errors';
import { PIDFD_SIGNALLER } from '../../src/native';
import {
  closeTestDriver,
  findCgroupDirs,
  JobLogs,
  openTestDriver,
  outputOf,
  runInJob,
  startTimeOf,
  stillRunning,
  TEST_ROOT_NAME,
  waitForStdout,
  createJobCgroup,
} from '../helpers/cgroup-jobs';
import { TEST_SLICE } from '../helpers/cgroup-plan';
import { requireRoot } from '../helpers/root';

let driver: OpenedCgroupDriver;
let host: CgroupHost;
const logs = new JobLogs();
let seq = 0;

function jobId(label: string): string {
  return `${label}-${seq++}`;
}

describe('cgroup driver on this host', requireRoot, () => {
  before(async () => {
    useKillSignaller(PIDFD_SIGNALLER); // as the Worker does: real processes are signalled through pidfds
    host = discoverHost();
    driver = await openTestDriver();
  });

  after(async () => {
    await closeTestDriver(driver);
    logs.remove();
    assert.deepEqual(findCgroupDirs(TEST_ROOT_NAME), [], 'every cgroup of this test is removed');
  });

  it('detects the mode statfs says and roots jobs beneath this process\'s own cgroup', () => {
    const fsType = statfsSync('/sys/fs/cgroup').type;
    const expected = fsType === CGROUP2_SUPER_MAGIC
      ? 'unified'
      : existsSync('/sys/fs/cgroup/unified') && statfsSync('/sys/fs/cgroup/unified').type === CGROUP2_SUPER_MAGIC ? 'hybrid' : 'legacy';
    assert.equal(driver.mode, expected);
    if (process.env.JOBWORKER_TEST_CGROUP_ROOT) return;
    if (host.unified !== undefined) {
      // On v2 this process may by now sit in its own leaf, <own>/<root>/daemon.
      const own = host.unified.ownPath.replace(new RegExp(`/${TEST_ROOT_NAME}/daemon$`), '');
      assert.equal(driver.jobsRoot, path.join(host.unified.mountPoint, own, TEST_ROOT_NAME, 'jobs'));
    } else {
      assert.ok(driver.jobsRoot.endsWith(`/${TEST_ROOT_NAME}/jobs`));
    }
  });

  it('a job is in its cgroups from its first instruction, in every hierarchy it needs', async () => {
    const id = jobId('placement');
    const job = await createJobCgroup(driver, id, {}, '/');
    try {
      // cat reads /proc/self/cgroup as the first thing it does after exec.
      const running = runInJob(job, logs, 'cat', ['/proc/self/cgroup']);
      assert.equal((await running.proc.exited).code, 0);
      const lines = (await outputOf(running)).stdout.trim().split('\n');
      const suffix = `/${TEST_ROOT_NAME}/jobs/${TEST_SLICE}/${id}`;
      const pathOf = (match: (controllers: string[], hierarchyId: string) => boolean): string | undefined =>
        lines.map((line) => line.split(':')).find(([hid, controllers]) => match(controllers!.split(','), hid!))?.[2];
      const expected: string[] = [];
      if (driver.mode !== 'legacy') expected.push('unified');
      if (driver.mode !== 'unified') {
        for (const controller of ['cpu', 'memory', 'blkio', 'pids', ...(driver.mode === 'legacy' ? ['freezer'] : [])]) {
          if (v1HierarchyOf(host, controller) !== undefined) expected.push(controller);
        }
      }
      assert.ok(expected.length > 0);
      for (const hierarchy of expected) {
        const where = hierarchy === 'unified'
          ? pathOf((controllers, hid) => hid === '0' && controllers[0] === '')
          : pathOf((controllers, hid) => hid !== '0' && controllers.includes(hierarchy));
        assert.ok(where?.endsWith(suffix), `${hierarchy}: ${where} should end with ${suffix}`);
      }
    } finally {
      await job.destroy();
    }
  });

  it('signalAll: every process gets the signal; the cgroup then reports itself empty', async () => {
    const job = await createJobCgroup(driver, jobId('signal'), {}, '/');
    try {
      const running = runInJob(job, logs, 'sh', ['-c', 'sleep 1000 & sleep 1000 & echo ready; wait']);
      await waitForStdout(running, 'ready');
      assert.equal(await job.signalAll('SIGTERM'), 3);
      assert.equal((await running.proc.exited).signal, 'SIGTERM');
      assert.equal(await job.waitEmpty(10_000), true);
      // (pids.current may still count the orphaned sleeps until init reaps them: not asserted.)
      assert.deepEqual(listProcs(job.path), []);
    } finally {
      await job.destroy();
    }
  });

  it('stop: double-forked daemons that ignore SIGTERM are gone after kill; pipes close; the cgroup is removed', async () => {
    const id = jobId('daemons');
    const job = await createJobCgroup(driver, id, {}, '/');
    // The daemon leaves the job's session and process group (setsid) and its parent exits (double
    // fork), and both of its processes ignore SIGTERM: only the cgroup still knows them.
    const daemon = 'trap "" TERM; sleep 1000 & echo started; exec sleep 1000';
    const running = runInJob(job, logs, 'sh', ['-c', `(setsid sh -c '${daemon}' &); exec sleep 1000`]);
    await waitForStdout(running, 'started');
    const pids = (await job.stats()).pidsCurrent;
    assert.ok(pids >= 3, `main + 2 daemon processes, got ${pids}`);
    const listed = listProcs(job.path);
    const started = new Map(listed.map((pid) => [pid, startTimeOf(pid)]));

    // Graceful first: the main process goes, the daemons stay.
    assert.ok((await job.signalAll('SIGTERM')) >= 3);
    assert.equal((await running.proc.exited).signal, 'SIGTERM');
    assert.equal(await job.waitEmpty(300), false, 'the daemons ignore SIGTERM');

    await job.kill();
    assert.equal(await job.waitEmpty(10_000), true);
    for (const [pid, startTime] of started) assert.equal(stillRunning(pid, startTime), false, `pid ${pid} survived`);
    const closed = await running.proc.closed; // the daemons held the job's pipes
    assert.equal(closed.writeError, null);

    await job.destroy();
    assert.equal(await driver.open({ id, slice: TEST_SLICE }), undefined);
    assert.deepEqual(findCgroupDirs(`${TEST_ROOT_NAME}/jobs/${TEST_SLICE}/${id}`), []);
  });

  it('waitEmpty resolves when the last process exits (an event, not a poll); false on timeout while running', async () => {
    const job = await createJobCgroup(driver, jobId('wait'), {}, '/');
    try {
      const long = runInJob(job, logs, 'sleep', ['1000']);
      assert.equal(await job.waitEmpty(100), false);
      long.proc.kill('SIGKILL');
      const started = Date.now();
      assert.equal(await job.waitEmpty(30_000), true);
      assert.ok(Date.now() - started < 10_000);
      assert.equal(await job.waitEmpty(0), true); // already empty
    } finally {
      await job.destroy();
    }
  });

  it('destroy kills what is left, and is idempotent (concurrent calls too)', async () => {
    const id = jobId('destroy');
    const job = await createJobCgroup(driver, id, {}, '/');
    const running = runInJob(job, logs, 'sleep', ['1000']);
    await Promise.all([job.destroy(), job.destroy()]);
    assert.equal((await running.proc.exited).signal, 'SIGKILL');
    await job.destroy();
    assert.deepEqual(findCgroupDirs(`${TEST_ROOT_NAME}/jobs/${TEST_SLICE}/${id}`), []);
    assert.equal(await driver.open({ id, slice: TEST_SLICE }), undefined);
    // A handle on a removed job does no harm.
    assert.equal(await job.signalAll('SIGTERM'), 0);
    await job.kill();
    assert.equal(await job.waitEmpty(0), true);
    await assert.rejects(job.stats(), (error: unknown) => error instanceof JobworkerError && error.kind === 'not-found');
  });

  it('orphans after a daemon crash: a new driver lists them, opens them, kills and removes them', async () => {
    const id = jobId('orphan');
    const job = await createJobCgroup(driver, id, { pids: 32 }, '/');
    const running = runInJob(job, logs, 'sh', ['-c', '(setsid sleep 1000 &); echo up; exec sleep 1000']);
    await waitForStdout(running, 'up');
    // "Restart": a fresh driver on the same root knows nothing of the job but what the cgroups say.
    const restarted = await openTestDriver();
    assert.ok((await restarted.listJobs()).some((name) => name.id === id));
    const orphan = await restarted.open({ id, slice: TEST_SLICE });
    assert.ok(orphan !== undefined);
    assert.equal(orphan.path, job.path);
    await orphan.destroy();
    assert.equal((await running.proc.exited).signal, 'SIGKILL');
    await running.proc.closed;
    await job.destroy(); // nothing left to remove: the first driver's job leaves its slice
    assert.ok(!(await restarted.listJobs()).some((name) => name.id === id));
    assert.equal(await restarted.open({ id: 'never-existed', slice: TEST_SLICE }), undefined);
  });

  it('create: a duplicate id is refused and the first job is intact; invalid limits create nothing', async () => {
    const id = jobId('dup');
    const job = await createJobCgroup(driver, id, { pids: 10 }, '/');
    try {
      await assert.rejects(createJobCgroup(driver, id, {}, '/'), (error: unknown) => error instanceof JobworkerError && error.kind === 'already-exists');
      assert.ok((await driver.listJobs()).some((name) => name.id === id));
      const running = runInJob(job, logs, 'true', []);
      assert.equal((await running.proc.exited).code, 0);
      const before = await driver.listJobs();
      await assert.rejects(createJobCgroup(driver, jobId('bad'), { memoryBytes: 12 }, '/'), ValidationError);
      await assert.rejects(createJobCgroup(driver, jobId('bad'), { io: [{ device: '/proc/self', readBps: 1 << 20 }] }, '/'), ValidationError);
      assert.deepEqual(await driver.listJobs(), before);
    } finally {
      await job.destroy();
    }
  });

  it('stress: 500 jobs created, each running a process, and destroyed, leave zero cgroups behind', { timeout: 300_000 }, async () => {
    const total = 500;
    const parallel = 8;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const id = `stress-${next++}`;
        const job = await createJobCgroup(driver, id, { cpu: 0.5, memoryBytes: 32 << 20, pids: 16 }, '/');
        const running = runInJob(job, logs, 'true', []);
        assert.equal((await running.proc.exited).code, 0);
        await job.destroy();
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    assert.deepEqual(await driver.listJobs(), []);
    // The identity's slice is kept for its next job (idle), and goes when asked to.
    assert.deepEqual(findCgroupDirs(`${TEST_ROOT_NAME}/jobs/${TEST_SLICE}/`), []);
    await driver.removeIdleSlices();
    assert.deepEqual(findCgroupDirs(`${TEST_ROOT_NAME}/jobs/`), []);
  });
});

function listProcs(dir: string): number[] {
  return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}
