// `job-cli wait`, `job-cli events`, `run --rm` and `--max-runtime` end to end: the real binary against a real daemon
// over mutual TLS. Jobs are released by the test (a file appearing), so every wait is on an event.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { TlsFilePaths } from '../../src/pki';
import type { CliProcess, CliResult } from '../helpers/cli';
import { CliTestbed, expectExit } from '../helpers/cli-testbed';
import { requireRoot } from '../helpers/root';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let testbed: CliTestbed;
let admin: TlsFilePaths;

function cli(args: string[]): Promise<CliResult> {
  return testbed.cli(args, admin);
}

function spawn(args: string[]): CliProcess {
  return testbed.spawn(args, admin);
}

/** A job that prints "ready", then ends with `exitCode` once the test opens its gate. */
async function gatedJob(exitCode: number): Promise<{ id: string; open: () => void }> {
  const gate = testbed.gate();
  const result = await cli(['start', '--', 'sh', '-c', `echo ready; ${gate.waitLoop}; exit ${exitCode}`]);
  expectExit(result, 0);
  const id = result.stdout.trim();
  assert.match(id, UUID);
  return { id, open: gate.open };
}

async function startJob(command: string[]): Promise<string> {
  const result = await cli(['start', '--', ...command]);
  expectExit(result, 0);
  return result.stdout.trim();
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('job-cli wait, events, run --rm and --max-runtime against a daemon', requireRoot, () => {
  before(async () => {
    testbed = await CliTestbed.start('cli-wait');
    admin = await testbed.pki.client({ name: 'ada', roles: ['admin'] });
  });

  after(async () => {
    await testbed?.stop();
  });

  describe('wait', () => {
    it('blocks while the job runs, then prints its exit code and exits with it', async () => {
      const job = await gatedJob(3);
      const wait = spawn(['wait', job.id.slice(0, 8)]);
      // Its answer (3) exists only once the gate opens, so an early return cannot pass as a wait.
      assert.equal(wait.child.exitCode, null, 'wait returned while the job was still running');
      job.open();
      const result = await wait.result;
      expectExit(result, 3);
      assert.equal(result.stdout, '3\n');
      assert.equal(result.stderr, '');
    });

    it('several jobs: one status per line in the order given; exit 0 only if all are 0, else the first non-zero', async () => {
      const done = await startJob(['true']);
      expectExit(await cli(['wait', done]), 0);
      const five = await gatedJob(5);
      const seven = await gatedJob(7);
      const wait = spawn(['wait', done, five.id, seven.id]);
      // The later job ends first: the answer still comes in the order given.
      seven.open();
      five.open();
      const result = await wait.result;
      expectExit(result, 5);
      assert.equal(result.stdout, '0\n5\n7\n');

      const zeros = await cli(['wait', done, done]);
      expectExit(zeros, 0);
      assert.equal(zeros.stdout, '0\n0\n');
    });

    it('more jobs than it watches at once: every one is answered, in order', async () => {
      const done = await startJob(['true']);
      const running = await gatedJob(9);
      // The running job takes a watch first; the rest queue behind the ones before them.
      const ids = [running.id, ...Array.from({ length: 24 }, () => done)];
      const wait = spawn(['wait', ...ids]);
      running.open();
      const result = await wait.result;
      expectExit(result, 9);
      assert.equal(result.stdout, ['9', ...Array.from({ length: 24 }, () => '0')].join('\n') + '\n');
    });

    it('a job stopped with SIGTERM: 143; --json gives the id, the status and the job', async () => {
      const job = await gatedJob(0);
      const wait = spawn(['wait', '--json', job.id]);
      expectExit(await cli(['stop', job.id]), 0);
      const result = await wait.result;
      expectExit(result, 143);
      const body = JSON.parse(result.stdout) as { id: string; exitStatus: number; job: Record<string, unknown> }[];
      assert.equal(body.length, 1);
      assert.deepEqual(Object.keys(body[0]!), ['id', 'exitStatus', 'job']);
      assert.equal(body[0]!.id, job.id);
      assert.equal(body[0]!.exitStatus, 143);
      assert.equal(body[0]!.job.state, 'stopped');
      assert.equal(body[0]!.job.signal, 'SIGTERM');
    });

    it('no such job: exit 1 naming it; no JOB: usage error', async () => {
      const missing = await cli(['wait', '00000000-0000-4000-8000-000000000000']);
      expectExit(missing, 1);
      assert.match(missing.stderr, /^job-cli: .*00000000-0000-4000-8000-000000000000/m);
      assert.equal(missing.stdout, '');
      expectExit(await cli(['wait']), 2);
    });
  });

  describe('events', () => {
    it('prints each change as a JSON line, --current first, and ends with exit 0 on Ctrl-C', async () => {
      const running = await gatedJob(0);
      const events = spawn(['events', '--json', '--current']);
      await events.waitFor(running.id);
      const quick = await startJob(['sh', '-c', 'exit 4']);
      await events.waitFor(new RegExp(`"id":"${quick}".*\\n`));
      // A non-zero exit code is the state "failed".
      await events.waitFor(/"state":"failed".*"exitCode":4/);
      running.open();
      await events.waitFor(new RegExp(`"previousState":"running","state":"exited","job":\\{"id":"${running.id}"`));
      events.child.kill('SIGINT');
      const result = await events.result;
      expectExit(result, 0);
      assert.equal(result.stderr, '');

      const lines = jsonLines(result.stdout);
      for (const line of lines) {
        assert.deepEqual(Object.keys(line), ['time', 'previousState', 'state', 'job']);
        assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.equal(line.state, (line.job as Record<string, unknown>).state);
      }
      const current = lines.find((line) => (line.job as { id: string }).id === running.id);
      assert.equal(current?.previousState, null, 'the running job first shows as its current state');
      assert.equal(current?.state, 'running');
      const ofQuick = lines.filter((line) => (line.job as { id: string }).id === quick);
      assert.ok(ofQuick.every((line) => line.previousState !== null), 'a job started after the watch began has changes only');
      assert.equal(ofQuick.at(-1)!.state, 'failed');
      assert.equal((ofQuick.at(-1)!.job as { exitCode: number }).exitCode, 4);
    });

    it('--state keeps only changes into those states; SIGTERM ends it with exit 0; text lines', async () => {
      const earlier = await startJob(['sh', '-c', 'exit 1']);
      expectExit(await cli(['wait', earlier]), 1);
      const events = spawn(['events', '--state', 'failed', '--current']);
      // A job that failed before the watch is a current line: the watch is in place once it shows.
      await events.waitFor(new RegExp(`${earlier}  failed \\(current\\)  exit 1  sh -c 'exit 1'\\n`));
      const stopped = await gatedJob(0);
      expectExit(await cli(['stop', stopped.id]), 0);
      const exited = await startJob(['true']);
      expectExit(await cli(['wait', exited]), 0);
      const failed = await startJob(['sh', '-c', 'exit 6']);
      await events.waitFor(new RegExp(`^\\S+Z  ${failed}  running -> failed  exit 6  sh -c 'exit 6'$`, 'm'));
      events.child.kill('SIGTERM');
      const result = await events.result;
      expectExit(result, 0);
      assert.doesNotMatch(result.stdout, new RegExp(stopped.id), 'a change into "stopped" is not a "failed" one');
      assert.doesNotMatch(result.stdout, new RegExp(exited), 'nor one into "exited"');
      assert.doesNotMatch(result.stdout, /-> running/, 'nor one into "running"');
    });

    it('with JOB: only that job, and it ends once the job has', async () => {
      const other = await gatedJob(0);
      const job = await gatedJob(2);
      const events = spawn(['events', '--current', job.id]);
      await events.waitFor(`${job.id}  running (current)`);
      other.open();
      expectExit(await cli(['wait', other.id]), 0);
      job.open();
      const result = await events.result;
      expectExit(result, 0);
      assert.doesNotMatch(result.stdout, new RegExp(other.id));
      assert.match(result.stdout, new RegExp(`${job.id}  running -> failed  exit 2`));
    });

    it('an unknown state is a usage error naming the flag and the states', async () => {
      const result = await cli(['events', '--state', 'done']);
      expectExit(result, 2);
      assert.match(result.stderr, /--state: unknown state "done"; expected queued, starting, running, exited, failed, stopped, lost/);
    });
  });

  describe('run --rm', () => {
    it("removes the job's record and log once it ended and its output was printed", async () => {
      const result = await cli(['run', '--rm', '--json', '--', 'sh', '-c', 'echo hi; exit 3']);
      expectExit(result, 3);
      const lines = jsonLines(result.stdout);
      const id = (lines[0]!.job as { id: string }).id;
      assert.deepEqual(lines.filter((line) => line.type === 'output').map((line) => line.data), ['hi\n']);
      assert.equal(lines.at(-1)!.type, 'status');
      const query = await cli(['query', id]);
      expectExit(query, 1);
      assert.match(query.stderr, /not found|no job/i);
    });

    it('Ctrl-C stops the job, then removes it; the exit status is the stopped job\'s', async () => {
      const run = spawn(['run', '--rm', '--', 'sh', '-c', 'echo ready; sleep 60']);
      await run.waitFor('ready\n');
      run.child.kill('SIGINT');
      const result = await run.result;
      expectExit(result, 143);
      const id = /stopping job ([0-9a-f-]{36})/.exec(result.stderr)![1]!;
      expectExit(await cli(['query', id]), 1);
    });

    it('without --rm the job stays', async () => {
      const result = await cli(['run', '--json', '--', 'true']);
      expectExit(result, 0);
      const id = (jsonLines(result.stdout)[0]!.job as { id: string }).id;
      expectExit(await cli(['query', id]), 0);
    });
  });

  describe('--max-runtime', () => {
    it('stops the job when its time is up; it ends failed, timed out, visible in query and list', async () => {
      const result = await cli(['run', '--json', '--max-runtime', '1s', '--', 'sh', '-c', 'echo started; sleep 60']);
      expectExit(result, 143);
      const lines = jsonLines(result.stdout);
      const id = (lines[0]!.job as { id: string }).id;
      assert.deepEqual(lines.filter((line) => line.type === 'output').map((line) => line.data), ['started\n']);

      const query = await cli(['query', '--json', id]);
      expectExit(query, 0);
      const job = JSON.parse(query.stdout) as Record<string, unknown>;
      assert.equal(job.state, 'failed');
      assert.equal(job.timedOut, true);
      assert.equal(job.maxRuntimeMs, 1000);
      assert.equal(job.signal, 'SIGTERM');
      assert.equal(job.stoppedBy, null);
      assert.equal(job.reason, 'timed out after 1s: killed by SIGTERM');
      assert.ok((job.durationMs as number) >= 1000, `ran ${String(job.durationMs)} ms`);

      const text = await cli(['query', id]);
      assert.match(text.stdout, /^Result +timed out after 1s: killed by SIGTERM$/m);
      assert.match(text.stdout, /^Max runtime +1s \(reached: it timed out\)$/m);
      const list = await cli(['list', '--state', 'failed', '--json']);
      const listed = (JSON.parse(list.stdout) as Record<string, unknown>[]).find((entry) => entry.id === id);
      assert.equal(listed?.timedOut, true);
      expectExit(await cli(['wait', id]), 143);
    });

    it('the stop is the normal one: the signal first, so the job may end its own way within the grace', async () => {
      const result = await cli(['run', '--json', '--max-runtime', '500ms', '--', 'sh', '-c', 'trap "echo cleaning up; exit 7" TERM; echo ready; while :; do sleep 0.05; done']);
      expectExit(result, 7);
      const lines = jsonLines(result.stdout);
      // Every process gets the signal: sh's own `sleep` too (sh says "Terminated" on stderr).
      assert.deepEqual(lines.filter((line) => line.type === 'output' && line.stream === 'stdout').map((line) => line.data), ['ready\n', 'cleaning up\n']);
      const status = lines.at(-1)!.job as Record<string, unknown>;
      assert.equal(status.state, 'failed');
      assert.equal(status.timedOut, true);
      assert.equal(status.exitCode, 7);
      assert.equal(status.reason, 'timed out after 500ms: exited with code 7');
    });

    it('a job that ends in time is not touched', async () => {
      const result = await cli(['run', '--json', '--max-runtime', '1m', '--', 'true']);
      expectExit(result, 0);
      const status = jsonLines(result.stdout).at(-1)!.job as Record<string, unknown>;
      assert.equal(status.state, 'exited');
      assert.equal(status.timedOut, false);
      assert.equal(status.maxRuntimeMs, 60_000);
      const plain = jsonLines((await cli(['run', '--json', '--', 'true'])).stdout).at(-1)!.job as Record<string, unknown>;
      assert.equal(plain.maxRuntimeMs, null);
    });

    it('bad values are usage errors naming the flag; no job is started', async () => {
      for (const [value, message] of [
        ['0', /--max-runtime: must be from 1ms to 24.8 days/],
        ['10', /--max-runtime: .*add a unit/],
        ['30d', /--max-runtime: must be from 1ms to 24.8 days/],
      ] as const) {
        const result = await cli(['start', '--max-runtime', value, '--', 'true']);
        expectExit(result, 2);
        assert.match(result.stderr, message);
        assert.equal(result.stdout, '');
      }
      const pool = await cli(['start', '--pool', 'p', '--max-runtime', '1m', '--', 'true']);
      expectExit(pool, 2);
      assert.match(pool.stderr, /--max-runtime: is not supported for pool jobs yet/);
    });
  });
});
