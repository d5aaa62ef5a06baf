// The server's bounds on itself, in isolation: periodic tasks never throw out of their timer, the
// fd budget's arithmetic and refusals, tail/since scans taking turns, aggregated audit lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { Logger } from '../../src/logger';
import { runPeriodically } from '../../src/periodic';
import { FdBudget, FDS_PER_JOB, openFilesLimit } from '../../src/server/fd-budget';
import { RefusalLog } from '../../src/server/refusal-log';
import { ScanLimiter } from '../../src/server/scan-limiter';

describe('periodic tasks', () => {
  it('a task that throws (EMFILE) or rejects is reported, not thrown, and runs again', async () => {
    let runs = 0;
    const reports: [unknown, number][] = [];
    const task = runPeriodically({
      name: 'memory',
      intervalMs: 10,
      task: () => {
        runs++;
        if (runs % 2 === 0) return Promise.reject(new Error('rejected'));
        throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
      },
      onError: (_name, error, failures) => reports.push([error, failures]),
    });
    for (const deadline = Date.now() + 10_000; runs < 4 && Date.now() < deadline; ) await delay(10);
    task.stop();
    assert.ok(runs >= 4, `ran ${runs} times`);
    assert.equal(reports.length, 1, 'reported once per minute');
    assert.match(String(reports[0]![0]), /EMFILE/);
  });
});

describe('the fd budget', () => {
  it('reads RLIMIT_NOFILE from /proc/self/limits', () => {
    const text = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n';
    assert.deepEqual(openFilesLimit(text), { soft: 1024, hard: 524288 });
    assert.ok(openFilesLimit().soft > 0);
  });

  it('refuses a job or a log stream past the budget or past one identity\'s share, naming the budget; connections get half', () => {
    const held = { jobs: 0, connections: 0, logStreams: 0 };
    const budget = new FdBudget({ limit: 1124, reserved: 124 }, { runningJobs: () => held.jobs, connections: () => held.connections, logStreams: () => held.logStreams });
    assert.equal(budget.total, 1000);
    assert.equal(budget.connectionShare, 500);
    budget.check('job', { name: 'alice', holding: 99 });
    assert.throws(() => budget.check('job', { name: 'alice', holding: 100 }), /alice has 100 jobs running.*50% of 1000 fds, 5 per job; fileDescriptors\.identityJobShare/);
    budget.check('log stream', { name: 'eve', holding: 249 });
    assert.throws(() => budget.check('log stream', { name: 'eve', holding: 250 }), /eve has 250 log streams open, the most one identity may hold .*25% of 1000 fds, 1 per log stream; fileDescriptors\.identityStreamShare/);
    held.connections = 500;
    assert.equal(budget.allows('connection'), false, 'connections stop at half the budget');
    held.jobs = Math.floor(500 / FDS_PER_JOB);
    assert.throws(() => budget.check('job'), /file descriptor budget is used up: 1000 of 1000 in use \(jobs 500, connections 500, log streams 0; RLIMIT_NOFILE 1124, 124 kept/);
    assert.throws(() => budget.check('log stream'), (error: Error & { kind?: string }) => error.kind === 'resource-exhausted');
  });
});

describe('tail/since scans', () => {
  it('run at most `max` at once and one per identity; a waiter whose client leaves is dropped', async () => {
    const scans = new ScanLimiter(2, 1);
    const never = new AbortController().signal;
    const a1 = await scans.acquire('a', never);
    let a2Admitted = false;
    const a2 = scans.acquire('a', never).then((release) => {
      a2Admitted = true;
      return release;
    });
    const b1 = await scans.acquire('b', never); // another identity is not held up by a's queue
    const leaving = new AbortController();
    const c1 = scans.acquire('c', leaving.signal);
    assert.equal(scans.running, 2);
    assert.equal(scans.waiting, 2);
    leaving.abort(new Error('client gone'));
    await assert.rejects(c1, /client gone/);
    await delay(5);
    assert.equal(a2Admitted, false);
    a1();
    (await a2)();
    b1();
    assert.equal(scans.running, 0);
  });
});

describe('tail/since scans, taking turns', () => {
  it('identities take turns: five queued by one, then one by another, the other goes second', async () => {
    const scans = new ScanLimiter(1, 1);
    const never = new AbortController().signal;
    const order: string[] = [];
    const first = await scans.acquire('alice', never);
    const queued = [
      ...[0, 1, 2, 3, 4].map((i) => ({ name: `alice${i}`, identity: 'alice' })),
      { name: 'bob0', identity: 'bob' },
      { name: 'bob1', identity: 'bob' },
    ].map(({ name, identity }) =>
      scans.acquire(identity, never).then((release) => {
        order.push(name);
        release(); // the next one's turn, synchronously
      }),
    );
    assert.equal(scans.waiting, 7);
    first();
    await Promise.all(queued);
    assert.deepEqual(order, ['alice0', 'bob0', 'alice1', 'bob1', 'alice2', 'alice3', 'alice4']);
    assert.equal(scans.running, 0);
    assert.equal(scans.waiting, 0);
  });
});

describe('aggregated audit lines', () => {
  it('the first refusal per key at once, the rest as one counted line per interval', () => {
    const lines: Record<string, unknown>[] = [];
    const log = new RefusalLog(new Logger({ format: 'json', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }), 60_000);
    for (let i = 0; i < 1000; i++) log.note('call refused', 'reader', { who: 'reader', code: 'PERMISSION_DENIED' });
    log.note('call refused', 'other', { who: 'other' });
    assert.equal(lines.length, 2);
    log.close();
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!.msg, 'call refused (repeated)');
    assert.equal(lines[2]!.repeated, 999);
    assert.equal(lines[2]!.who, 'reader');
  });
});
