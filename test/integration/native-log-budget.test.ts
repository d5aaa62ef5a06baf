// An identity's log budget shared by several jobs' capture, and the directory lock that marks a cgroup
// root as owned: both by their effect on real processes and files.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LogBudget, spawnProcess, tryLockPath, type SpawnOptions } from '../../src/native';
import { readCapturedOutput } from '../helpers/log';

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };
const FILE_HEADER = 16;
const RECORD_HEADER = 24;
let dir: string;
let seq = 0;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-budget-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function runToEnd(options: Omit<SpawnOptions, 'logPath' | 'env'>) {
  const log = path.join(dir, `job-${seq++}.log`);
  const proc = spawnProcess({ env: ENV, ...options, logPath: log });
  const exit = await proc.exited;
  const close = await proc.closed;
  return { exit, close, log, output: await readCapturedOutput(log) };
}

describe('log budget', () => {
  it('is charged exactly what the log file holds after its header, records and markers', async () => {
    const budget = new LogBudget(1 << 20);
    const { close, log, output } = await runToEnd({ command: 'sh', args: ['-c', 'echo one; echo two >&2; head -c 5000 /dev/zero'], logBudget: budget });
    assert.equal(output.stdout.length + output.stderr.length, 4 + 4 + 5000);
    assert.equal(statSync(log).size, close.logBytes);
    assert.equal(budget.used, close.logBytes - FILE_HEADER);
  });

  it('jobs writing at once share it: together they keep no more than it grants, and each says so in a marker', async () => {
    const limit = 300_000;
    const budget = new LogBudget(limit);
    const runs = await Promise.all([1, 2, 3].map(() => runToEnd({ command: 'head', args: ['-c', String(1 << 20), '/dev/urandom'], logBudget: budget })));
    const kept = runs.reduce((sum, run) => sum + run.close.logBytes - FILE_HEADER, 0);
    assert.equal(budget.used, kept, 'charged what the files hold');
    const markers = runs.flatMap((run) => run.output.markers.map((m) => JSON.parse(m) as Record<string, unknown>));
    // Records and their headers fill the budget; only markers (a few dozen bytes each) pass it.
    const markerBytes = markers.length * RECORD_HEADER + runs.reduce((sum, run) => sum + run.output.markers.join('').length, 0);
    assert.ok(kept - markerBytes <= limit, `${kept - markerBytes} bytes of records for a budget of ${limit}`);
    assert.ok(kept - markerBytes > limit - 3 * (RECORD_HEADER + 1), `the budget is used up: ${kept - markerBytes} of ${limit}`);
    assert.deepEqual(markers, runs.map(() => ({ event: 'truncated', reason: 'identity-quota', limitBytes: limit })));
    for (const run of runs) {
      assert.equal(run.exit.code, 0, 'capture kept draining: no job was blocked');
      assert.equal(run.close.truncated, true);
      assert.equal(run.output.stdout.length + run.close.droppedBytes, 1 << 20);
    }
  });

  it('bytes released (a removed log) can be written again; an exhausted budget keeps nothing but the marker', async () => {
    const budget = new LogBudget(10_000);
    budget.charge(10_000);
    assert.equal(budget.available, 0);
    const none = await runToEnd({ command: 'echo', args: ['hello'], logBudget: budget });
    assert.equal(none.output.stdout.length, 0);
    assert.equal(none.close.truncated, true);
    assert.equal(none.close.droppedBytes, 6);
    budget.release(10_000);
    const some = await runToEnd({ command: 'echo', args: ['hello'], logBudget: budget });
    assert.equal(some.output.stdout.toString(), 'hello\n');
    assert.equal(some.close.truncated, false);
  });

  it('the per-job cap still applies, and its marker is the cap\'s', async () => {
    const budget = new LogBudget(1 << 30);
    const { output, close } = await runToEnd({ command: 'head', args: ['-c', '100000', '/dev/zero'], logMaxBytes: 1000, logBudget: budget });
    assert.equal(output.stdout.length, 1000);
    assert.deepEqual(output.markers.map((m) => JSON.parse(m)), [{ event: 'truncated', limitBytes: 1000 }]);
    assert.equal(budget.used, close.logBytes - FILE_HEADER);
  });
});

describe('tryLockPath', () => {
  it('one holder at a time, another process included; released by release() or by the holder\'s death', async () => {
    const locked = path.join(dir, 'locked-dir');
    mkdirSync(locked);
    const first = tryLockPath(locked);
    assert.ok(first !== undefined);
    assert.equal(tryLockPath(locked), undefined, 'a second open file of this process is refused');
    assert.equal(flockFromOutside(locked), 1, 'flock(1) in another process is refused');
    first.release();
    first.release();
    // A process that holds the lock itself (no child to inherit it), then is killed.
    const script = 'import fcntl, os, time; fd = os.open(os.environ["TARGET"], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); time.sleep(30)';
    const holder = spawn('python3', ['-c', script], { stdio: 'ignore', env: { ...ENV, TARGET: locked } });
    try {
      await waitUntil(() => {
        const probe = tryLockPath(locked);
        probe?.release();
        return probe === undefined;
      });
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    const after = tryLockPath(locked);
    assert.ok(after !== undefined, 'the dead holder\'s lock went with it');
    after.release();
    rmdirSync(locked);
  });
});

function flockFromOutside(target: string): number {
  try {
    execFileSync('flock', ['-n', target, 'true']);
    return 0;
  } catch (error) {
    return (error as { status: number }).status;
  }
}

async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
