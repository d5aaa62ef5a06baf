// job-cli end to end: the real binary against a real daemon over mutual TLS, one process per
// command. Each command's happy path, --json shapes, exit codes (the job's own for run and stream),
// stdout/stderr separation, roles, and the errors people see.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { TlsFilePaths } from '../../src/pki';
import { CLI_BIN, runCli, runShell, show, spawnCli, spawnCliOnTerminal, type CliResult } from '../helpers/cli';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { craftCertificate, createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JOB_KEYS = [
  'args', 'argsOmitted', 'command', 'createdAt', 'cwd', 'durationMs', 'exitCode', 'finishedAt', 'id', 'isolation', 'labels', 'limits', 'log', 'name', 'oomKilled',
  'owner', 'pid', 'pool', 'reason', 'signal', 'startedAt', 'state', 'stats', 'stoppedBy', 'timedOut', 'user', 'maxRuntimeMs',
].sort();

let pki: TestPki;
let dir: string;
let home: string;
let daemon: RunningTestDaemon;
let admin: TlsFilePaths;
let writer: TlsFilePaths;
let reader: TlsFilePaths;

function credentials(files: TlsFilePaths): Record<string, string> {
  return { JOBWORKER_ADDR: daemon.address, JOBWORKER_CA: files.caPath, JOBWORKER_CERT: files.certificatePath, JOBWORKER_KEY: files.privateKeyPath };
}

/** job-cli as the admin "ada" (or another identity's files). */
function cli(args: string[], as: TlsFilePaths = admin): Promise<CliResult> {
  return runCli(args, { home, env: credentials(as) });
}

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const onTerminal = hasScript ? {} : { skip: 'needs util-linux `script` for a pseudo-terminal' };

function expectExit(result: CliResult, code: number): void {
  assert.equal(result.code, code, show(result));
}

async function startJob(command: string[], flags: string[] = []): Promise<string> {
  const result = await cli(['start', ...flags, '--', ...command]);
  expectExit(result, 0);
  const id = result.stdout.trim();
  assert.match(id, UUID);
  return id;
}

/** Follows a job's output until `text` appears (an event, not a timer), then leaves the stream. */
async function waitForOutput(id: string, text: string): Promise<void> {
  const stream = spawnCli(['stream', id], { home, env: credentials(admin) });
  await stream.waitFor(text);
  stream.child.kill('SIGTERM');
  await stream.result;
}

async function jobJson(id: string): Promise<Record<string, unknown>> {
  const result = await cli(['query', '--json', id]);
  expectExit(result, 0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('job-cli against a daemon', requireRoot, () => {
  before(async () => {
    pki = await createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-test-'));
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-home-'));
    admin = await pki.client({ name: 'ada', roles: ['admin'] });
    writer = await pki.client({ name: 'wes', roles: ['writer'] });
    reader = await pki.client({ name: 'rita', roles: ['reader'] });
    daemon = await startTlsDaemon('cli', await pki.server(), dir, mkdtempSync(path.join(dir, 'state-')));
  });

  after(async () => {
    await daemon?.stop();
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  describe('run', () => {
    it("prints the job's stdout on stdout and its stderr on stderr, and exits with its code", async () => {
      const result = await cli(['run', '--', 'sh', '-c', 'echo out1; echo err1 >&2; echo out2; exit 7']);
      expectExit(result, 7);
      assert.equal(result.stdout, 'out1\nout2\n');
      assert.equal(result.stderr, 'err1\n');
    });

    it('exits 0 for a job that exits 0, with limits, environment and working directory applied', async () => {
      const result = await cli(['run', '--cpu', '0.5', '--memory', '64M', '--pids', '50', '--env', 'GREETING=hello there', '--cwd', '/tmp', '--', 'sh', '-c', 'echo "$GREETING from $(pwd)"']);
      expectExit(result, 0);
      assert.equal(result.stdout, 'hello there from /tmp\n');
      assert.equal(result.stderr, '');
    });

    it('exits 128 + the signal when a signal ended the job', async () => {
      expectExit(await cli(['run', '--', 'sh', '-c', 'kill -KILL $$']), 137);
      expectExit(await cli(['run', '--', 'sh', '-c', 'kill -TERM $$']), 143);
    });

    it('--json: a started line, the output, a status line', async () => {
      const result = await cli(['run', '--json', '--', 'sh', '-c', 'echo hi; echo oops >&2; exit 3']);
      expectExit(result, 3);
      const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.equal(lines[0]!.type, 'started');
      const started = lines[0]!.job as Record<string, unknown>;
      assert.deepEqual(Object.keys(started).sort(), JOB_KEYS);
      const output = lines.filter((line) => line.type === 'output');
      assert.deepEqual(output.map((line) => [line.stream, line.data]), [['stdout', 'hi\n'], ['stderr', 'oops\n']]);
      for (const line of output) assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      const status = lines.at(-1)!;
      assert.equal(status.type, 'status');
      assert.deepEqual((status.job as Record<string, unknown>).exitCode, 3);
      assert.equal((status.job as Record<string, unknown>).id, started.id);
      assert.equal(result.stderr, '');
    });

    it('without a terminal, Ctrl-C stops the job and exits with its status', async () => {
      const run = spawnCli(['run', '--', 'sh', '-c', 'echo ready; sleep 60'], { home, env: credentials(admin) });
      await run.waitFor('ready\n');
      run.child.kill('SIGINT');
      const result = await run.result;
      expectExit(result, 143);
      assert.match(result.stderr, /stopping job [0-9a-f-]{36}/);
      const id = /stopping job ([0-9a-f-]{36})/.exec(result.stderr)![1]!;
      const job = await jobJson(id);
      assert.equal(job.state, 'stopped');
      assert.equal(job.stoppedBy, 'ada');
    });

    it('on a terminal, Ctrl-C asks; "d" detaches and leaves the job running', onTerminal, async () => {
      const run = spawnCliOnTerminal(['run', '--', 'sh', '-c', 'echo ready; exec sleep 60'], { home, env: credentials(admin) });
      await run.waitFor('ready');
      run.child.stdin!.write('\x03');
      await run.waitFor('[S/d] ');
      run.child.stdin!.write('d\r');
      const result = await run.result;
      expectExit(result, 0);
      const id = /detached; job ([0-9a-f-]{36}) keeps running/.exec(result.stdout)?.[1];
      assert.ok(id, show(result));
      assert.equal((await jobJson(id)).state, 'running');
      expectExit(await cli(['stop', id]), 0);
    });

    it('on a terminal, a second Ctrl-C while asking stops the job', onTerminal, async () => {
      const run = spawnCliOnTerminal(['run', '--', 'sh', '-c', 'echo ready; exec sleep 60'], { home, env: credentials(admin) });
      await run.waitFor('ready');
      run.child.stdin!.write('\x03');
      await run.waitFor('[S/d] ');
      run.child.stdin!.write('\x03');
      const result = await run.result;
      expectExit(result, 143);
      const id = /stopping job ([0-9a-f-]{36})/.exec(result.stdout)?.[1];
      assert.ok(id, show(result));
      assert.equal((await jobJson(id)).state, 'stopped');
    });

    it('passes binary output through exactly, at pipe speed', async () => {
      // The job checksums 4 MiB of random bytes on stderr and writes them on stdout; the pipe's checksum must match.
      const job = 'f=$(mktemp); head -c 4194304 /dev/urandom > $f; sha256sum < $f >&2; cat $f; rm -f $f';
      const result = await runShell(`'${process.execPath}' '${CLI_BIN}' run -- sh -c '${job}' | sha256sum`, { home, env: credentials(admin) });
      expectExit(result, 0);
      assert.match(result.stdout, /^[0-9a-f]{64} {2}-\n$/);
      assert.equal(result.stderr, result.stdout, 'checksum of what the job wrote = checksum of what job-cli printed');
    });

    it('stream into a file, and into a slow pipe: exactly the bytes the job wrote, message after message', async () => {
      // 6 MiB of random bytes: ~24 messages, each written out before the next reuses its memory.
      const id = await startJob(['sh', '-c', 'f=$(mktemp); head -c 6291456 /dev/urandom > $f; sha256sum < $f >&2; cat $f; rm -f $f']);
      const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-stream-'));
      try {
        const cliLine = `'${process.execPath}' '${CLI_BIN}' stream ${id}`;
        const toFile = await runShell(`${cliLine} > '${dir}/out' && sha256sum < '${dir}/out'`, { home, env: credentials(admin) });
        expectExit(toFile, 0);
        assert.match(toFile.stdout, /^[0-9a-f]{64} {2}-\n$/);
        assert.equal(toFile.stderr, toFile.stdout, 'checksum of what the job wrote = checksum of the file');
        // The reader starts late, so the pipe fills and job-cli's writes wait for it.
        const slowPipe = await runShell(`${cliLine} 2>/dev/null | { sleep 1; sha256sum; }`, { home, env: credentials(admin) });
        expectExit(slowPipe, 0);
        assert.equal(slowPipe.stdout, toFile.stdout);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('when its reader goes away, run stops the job and exits 141; stream just leaves with 141', async () => {
      const cliLine = `'${process.execPath}' '${CLI_BIN}'`;
      const run = await runShell(`{ ${cliLine} run -- yes; echo "status=$?" >&2; } | head -c 100000 > /dev/null`, { home, env: credentials(admin) });
      assert.match(run.stderr, /^status=141$/m, show(run));
      const id = /^job-cli: stopping job ([0-9a-f-]{36})…$/m.exec(run.stderr)?.[1];
      assert.ok(id, show(run));
      assert.equal((await jobJson(id)).state, 'stopped');

      const running = await startJob(['yes']);
      const stream = await runShell(`{ ${cliLine} stream ${running}; echo "status=$?" >&2; } | head -c 100000 > /dev/null`, { home, env: credentials(admin) });
      assert.match(stream.stderr, /^status=141$/m, show(stream));
      assert.equal((await jobJson(running)).state, 'running');
      expectExit(await cli(['stop', running]), 0);
    });

    it('a command that is not found exits 127, one that cannot be executed 126, as in a shell; no job is left', async () => {
      const before = JSON.parse((await cli(['list', '--all', '--json'])).stdout) as unknown[];
      const missing = await cli(['run', '--', 'no-such-command-anywhere']);
      expectExit(missing, 127);
      assert.equal(
        missing.stderr,
        'job-cli: command not found: "no-such-command-anywhere" is in none of the PATH directories /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' +
          'hint: give its full path, or a PATH that has it (--env PATH=…)\n',
      );
      const inPath = await cli(['start', '--env', 'PATH=/opt/nothing', '--', 'ls']);
      expectExit(inPath, 127);
      assert.match(inPath.stderr, /^job-cli: command not found: "ls" is in none of the PATH directories \/opt\/nothing\n/);
      const notExecutable = await cli(['run', '--', '/proc/version']);
      expectExit(notExecutable, 126);
      assert.match(notExecutable.stderr, /^job-cli: command not executable: \/proc\/version: EACCES: permission denied/);
      // A job that exits 127 by itself is told apart by stderr: no "job-cli:" line.
      const own = await cli(['run', '--', 'sh', '-c', 'exit 127']);
      expectExit(own, 127);
      assert.equal(own.stderr, '');
      const after = JSON.parse((await cli(['list', '--all', '--json'])).stdout) as unknown[];
      assert.equal(after.length, before.length + 1, 'only the job that ran is listed');
    });

    it('the job\'s environment: -e NAME passes our value, --env-file reads a file, PATH is there unless given', async () => {
      const file = path.join(dir, 'job.env');
      writeFileSync(file, '# settings\nGREETING=from the file\nWHO\n');
      // --cwd /: sh's PWD is then /, not the job's scratch directory.
      const result = await runCli(['run', '--cwd', '/', '-e', 'LANG', '--env-file', file, '--env', 'EXTRA=x', '--', 'sh', '-c', 'env | sort'], {
        home,
        env: { ...credentials(admin), LANG: 'C.UTF-8', WHO: 'ada' },
      });
      expectExit(result, 0);
      assert.equal(result.stdout, ['EXTRA=x', 'GREETING=from the file', 'LANG=C.UTF-8', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PWD=/', 'WHO=ada', ''].join('\n'));
    });
  });

  describe('start, query, stream', () => {
    it('start prints the id; --json the whole status, with the limits given', async () => {
      await startJob(['true']);
      const result = await cli(['start', '--json', '--cpu', '0.5', '--memory', '64M', '--memory-high', '48M', '--pids', '50', '--cpu-weight', '200', '--cwd', '/tmp', '--', 'sleep', '30']);
      expectExit(result, 0);
      const job = JSON.parse(result.stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(job).sort(), JOB_KEYS);
      assert.equal(job.state, 'running');
      assert.equal(job.command, 'sleep');
      assert.deepEqual(job.args, ['30']);
      assert.equal(job.cwd, '/tmp');
      assert.equal(job.owner, 'ada');
      const limits = job.limits as Record<string, unknown>;
      assert.equal(limits.cpu, 0.5);
      assert.equal(limits.cpuWeight, 200);
      assert.equal(limits.memoryBytes, 64 * 2 ** 20);
      assert.equal(limits.memoryHighBytes, 48 * 2 ** 20);
      assert.equal(limits.pids, 50);
      expectExit(await cli(['stop', '--grace', '0', String(job.id)]), 0);
    });

    it('stream follows a job to its end, splits stdout and stderr, and exits with its code', async () => {
      const id = await startJob(['sh', '-c', 'echo a; echo b >&2; echo c; exit 4']);
      const result = await cli(['stream', id]);
      expectExit(result, 4);
      assert.equal(result.stdout, 'a\nc\n');
      assert.equal(result.stderr, 'b\n');
      const logs = await cli(['logs', id]); // the alias
      expectExit(logs, 4);
      assert.equal(logs.stdout, 'a\nc\n');
    });

    it('stream --stdout / --stderr / --tail / --since / --timestamps / --no-follow', async () => {
      const id = await startJob(['sh', '-c', 'printf "1\\n2\\n3\\n4\\n5\\n"; echo e1 >&2; echo e2 >&2']);
      expectExit(await cli(['stream', id]), 0); // to its end
      const only = async (flags: string[]) => {
        const result = await cli(['stream', ...flags, id]);
        expectExit(result, 0);
        return result;
      };
      assert.deepEqual(await only(['--stdout']).then((r) => [r.stdout, r.stderr]), ['1\n2\n3\n4\n5\n', '']);
      assert.deepEqual(await only(['--stderr']).then((r) => [r.stdout, r.stderr]), ['', 'e1\ne2\n']);
      assert.equal((await only(['--stdout', '--tail', '2'])).stdout, '4\n5\n');
      assert.deepEqual(await only(['--tail', '0']).then((r) => [r.stdout, r.stderr]), ['', ''], 'none of the output so far, as tail -n 0');
      assert.equal((await only(['--since', '1h'])).stdout, '1\n2\n3\n4\n5\n');
      assert.equal((await only(['--since', new Date(Date.now() + 3_600_000).toISOString()])).stdout, '');
      const stamped = await only(['--timestamps', '--stdout', '--no-follow']);
      const lines = stamped.stdout.trim().split('\n');
      assert.equal(lines.length, 5);
      for (const [i, line] of lines.entries()) assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z ${i + 1}$`));
    });

    it('stream --no-follow prints what is there and exits 0 while the job runs', async () => {
      const id = await startJob(['sh', '-c', 'echo first; exec sleep 60']);
      await waitForOutput(id, 'first\n');
      const result = await cli(['stream', '--no-follow', id]);
      expectExit(result, 0);
      assert.equal(result.stdout, 'first\n');
      expectExit(await cli(['stop', id]), 0);
    });

    it('stream --json: chunks, then the status', async () => {
      const id = await startJob(['sh', '-c', 'echo out; echo err >&2']);
      const result = await cli(['stream', '--json', id]);
      expectExit(result, 0);
      const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.deepEqual(lines.slice(0, -1).map((line) => [line.type, line.stream, line.data]), [['output', 'stdout', 'out\n'], ['output', 'stderr', 'err\n']]);
      assert.equal(lines.at(-1)!.type, 'status');
      assert.equal((lines.at(-1)!.job as Record<string, unknown>).state, 'exited');
    });

    it('query shows state, result and resource use; --json the same data; status is an alias; a prefix of the id will do', async () => {
      const id = await startJob(['sh', '-c', 'echo done; exit 2'], ['--memory', '32M']);
      expectExit(await cli(['stream', id]), 2);
      const human = await cli(['query', id]);
      expectExit(human, 0);
      assert.match(human.stdout, new RegExp(`^ID +${id}$`, 'm'));
      assert.match(human.stdout, /^State +failed$/m);
      assert.match(human.stdout, /^Result +exited with code 2$/m);
      assert.match(human.stdout, /^Limits +.*memory 32 MiB/m);
      assert.match(human.stdout, /^CPU +\S+ \(user /m);
      assert.match(human.stdout, /^Log +\d+ B$/m);
      const job = await jobJson(id.slice(0, 8));
      assert.deepEqual(Object.keys(job).sort(), JOB_KEYS);
      assert.equal(job.id, id);
      assert.equal(job.state, 'failed');
      assert.equal(job.exitCode, 2);
      assert.equal(job.reason, 'exited with code 2');
      assert.equal((job.log as Record<string, unknown>).sizeBytes !== undefined, true);
      const alias = await cli(['status', '--json', id]);
      expectExit(alias, 0);
      assert.equal((JSON.parse(alias.stdout) as Record<string, unknown>).id, id);
    });

    it('query of a running job shows live resource use', async () => {
      const id = await startJob(['sh', '-c', 'echo up; exec sleep 60']);
      await waitForOutput(id, 'up\n');
      const job = await jobJson(id);
      assert.equal(job.state, 'running');
      assert.equal(typeof job.pid, 'number');
      const stats = job.stats as Record<string, number>;
      assert.ok(stats.memoryCurrentBytes > 0, JSON.stringify(stats));
      assert.ok(stats.pidsCurrent >= 1, JSON.stringify(stats));
      const human = await cli(['query', id]);
      assert.match(human.stdout, /^State +running \(pid \d+\)$/m);
      assert.match(human.stdout, /^Memory +[\d.]+ \w+ now/m);
      expectExit(await cli(['stop', id]), 0);
    });
  });

  describe('stop', () => {
    it('stops a job (the default signal is SIGTERM) and says how it ended', async () => {
      const id = await startJob(['sleep', '60']);
      const result = await cli(['stop', id]);
      expectExit(result, 0);
      assert.equal(result.stdout, `${id}: stopped by ada: killed by SIGTERM\n`);
      const job = await jobJson(id);
      assert.equal(job.state, 'stopped');
      assert.equal(job.signal, 'SIGTERM');
      expectExit(await cli(['stream', id]), 143);
    });

    it('stopping a job that already finished is not an error', async () => {
      const id = await startJob(['true']);
      expectExit(await cli(['stream', id]), 0);
      const result = await cli(['stop', '--json', id]);
      expectExit(result, 0);
      const body = JSON.parse(result.stdout) as { alreadyFinished: boolean; job: Record<string, unknown> };
      assert.deepEqual(Object.keys(body).sort(), ['alreadyFinished', 'job']);
      assert.equal(body.alreadyFinished, true);
      assert.equal(body.job.state, 'exited');
      const human = await cli(['stop', id]);
      expectExit(human, 0);
      assert.equal(human.stdout, `${id} had already finished: exited with code 0\n`);
    });

    it('--signal and --grace: a job that handles the signal ends with its own code', async () => {
      const id = await startJob(['sh', '-c', 'trap "echo got INT; exit 5" INT; echo ready; while :; do sleep 0.1; done']);
      await waitForOutput(id, 'ready\n');
      const result = await cli(['stop', '--signal', 'int', '--grace', '5s', '--json', id]);
      expectExit(result, 0);
      const body = JSON.parse(result.stdout) as { job: Record<string, unknown> };
      assert.equal(body.job.exitCode, 5);
      const stream = await cli(['stream', id]);
      expectExit(stream, 5);
      assert.equal(stream.stdout, 'ready\ngot INT\n');
    });
  });

  describe('list, rm, top', () => {
    it('list shows running jobs in a table; --all every job; --state filters; --json for programs', async () => {
      const running = await startJob(['sleep', '60']);
      const finished = await startJob(['true']);
      expectExit(await cli(['stream', finished]), 0);

      const table = await cli(['list']);
      expectExit(table, 0);
      assert.match(table.stdout, /^ID +NAME +STATE +EXIT +CREATED +DURATION +OWNER +COMMAND$/m);
      assert.match(table.stdout, new RegExp(`^${running} +- +running +- .* ada +sleep 60$`, 'm'));
      assert.doesNotMatch(table.stdout, new RegExp(finished));

      const all = await cli(['list', '--all', '--json']);
      expectExit(all, 0);
      const jobs = JSON.parse(all.stdout) as Record<string, unknown>[];
      assert.ok(Array.isArray(jobs));
      const ids = jobs.map((job) => job.id);
      assert.ok(ids.includes(running) && ids.includes(finished));
      for (const job of jobs) assert.deepEqual(Object.keys(job).sort(), JOB_KEYS);

      const exited = JSON.parse((await cli(['list', '--state', 'exited,failed', '--json'])).stdout) as Record<string, unknown>[];
      assert.ok(exited.some((job) => job.id === finished));
      assert.ok(exited.every((job) => job.state === 'exited' || job.state === 'failed'));
      expectExit(await cli(['stop', running]), 0);
    });

    it('others see only their own jobs; an admin sees all', async () => {
      const mine = await startJob(['true']);
      const theirs = await cli(['start', '--', 'true'], writer);
      expectExit(theirs, 0);
      const wes = JSON.parse((await cli(['list', '--all', '--json'], writer)).stdout) as Record<string, unknown>[];
      assert.ok(wes.some((job) => job.id === theirs.stdout.trim()));
      assert.ok(!wes.some((job) => job.id === mine));
      const seenByAda = JSON.parse((await cli(['list', '--all', '--json'])).stdout) as Record<string, unknown>[];
      assert.ok(seenByAda.some((job) => job.id === theirs.stdout.trim()));
      const notYours = await cli(['query', mine], writer);
      expectExit(notYours, 1);
      assert.match(notYours.stderr, /^job-cli: job [0-9a-f-]{36} not found\nhint: `job-cli list --all`/);
    });

    it('rm deletes finished jobs and refuses running ones', async () => {
      const done = await startJob(['true']);
      expectExit(await cli(['stream', done]), 0);
      const removed = await cli(['rm', done]);
      expectExit(removed, 0);
      assert.equal(removed.stdout, `${done} removed\n`);
      expectExit(await cli(['query', done]), 1);

      const running = await startJob(['sleep', '60']);
      const refused = await cli(['rm', running]);
      expectExit(refused, 1);
      assert.match(refused.stderr, /stop it before removing it/);
      expectExit(await cli(['stop', running]), 0);
    });

    it('quota shows the caller\'s usage against its limits; --json for programs; another identity\'s needs the admin role', async () => {
      const id = await startJob(['sleep', '60']);
      const human = await cli(['quota']);
      expectExit(human, 0);
      assert.match(human.stdout, /^identity ada \(cgroup identity\.ada\)$/m);
      assert.match(human.stdout, /^RESOURCE +USED +LIMIT +USE$/m);
      assert.match(human.stdout, /^running jobs +1 +1024 +0\.1%$/m);
      assert.match(human.stdout, /^memory +[\d.]+ [KMG]?i?B +[\d.]+ [KMGT]iB +/m);
      const json = JSON.parse((await cli(['quota', '--json'])).stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(json).sort(), ['identity', 'limits', 'logBytes', 'maxLogBytes', 'maxRunningJobs', 'runningJobs', 'slice', 'stats']);
      assert.equal(json.identity, 'ada');
      assert.equal(json.runningJobs, 1);
      const refused = await cli(['quota', 'ada'], writer);
      expectExit(refused, 1);
      assert.match(refused.stderr, /^job-cli: permission denied: wes may see only its own usage \(admins: anyone's\)/);
      expectExit(await cli(['quota', 'wes']), 0);
      expectExit(await cli(['stop', id]), 0);
    });

    it('top --once shows live CPU and memory of running jobs', async () => {
      const id = await startJob(['sh', '-c', 'echo spinning; while :; do :; done'], ['--cpu', '0.5']);
      await waitForOutput(id, 'spinning\n');
      const json = await cli(['top', '--once', '--interval', '500ms', '--json']);
      expectExit(json, 0);
      const frame = JSON.parse(json.stdout) as { time: string; jobs: Record<string, number | string | null>[] };
      const row = frame.jobs.find((job) => job.id === id);
      assert.ok(row, json.stdout);
      assert.ok((row.cpuPercent as number) > 10 && (row.cpuPercent as number) < 80, `0.5 CPU quota, got ${row.cpuPercent}%`);
      assert.ok((row.memoryBytes as number) > 0);
      assert.ok((row.pids as number) >= 1);
      const human = await cli(['top', '--once', '--interval', '200ms']);
      expectExit(human, 0);
      assert.match(human.stdout, /^ID +CPU % +MEM USAGE \/ LIMIT +MEM % +PIDS +DISK READ\/WRITE +COMMAND$/m);
      assert.match(human.stdout, new RegExp(`^${id} +[\\d.]+%`, 'm'));
      expectExit(await cli(['stop', id]), 0);
    });
  });

  describe('errors', () => {
    it('PERMISSION_DENIED says which role the call needs', async () => {
      const result = await cli(['start', '--', 'true'], reader);
      expectExit(result, 1);
      assert.equal(
        result.stderr,
        'job-cli: permission denied: rita (role reader) may not call StartJob\n' +
          'hint: StartJob needs the writer or admin role; ask for a certificate with it (`job-worker pki client --name … --role writer`)\n',
      );
      expectExit(await cli(['list'], reader), 0); // reading is allowed
    });

    it('an unknown job id or name is exit 1 with the server\'s message; a malformed one a usage error', async () => {
      const unknown = await cli(['query', '00000000-0000-4000-8000-000000000000']);
      expectExit(unknown, 1);
      assert.match(unknown.stderr, /^job-cli: job 00000000-0000-4000-8000-000000000000 not found$/m);
      const unnamed = await cli(['stop', 'not-a-job']);
      expectExit(unnamed, 1);
      assert.match(unnamed.stderr, /^job-cli: no job named not-a-job$/m);
      const malformed = await cli(['stop', '../etc']);
      expectExit(malformed, 2);
      assert.match(malformed.stderr, /JOB: expected a job id \(a UUID, or its first characters\) or a job name, got "..\/etc"/);
    });

    it('dialling an IP address works without Node\'s TLS server-name warning', async () => {
      const result = await runCli(['list', '--addr', `127.0.0.1:${daemon.port}`], { home, env: { ...credentials(admin), JOBWORKER_ADDR: undefined } });
      expectExit(result, 0);
      assert.doesNotMatch(result.stderr, /DEP0123|Warning/);
    });

    it('a certificate that expires soon works, with a warning', async () => {
      const soon = await pki.write(
        await craftCertificate({ subject: [{ CN: ['soon'] }], issuer: pki.ca, roles: ['reader'], notAfter: new Date(Date.now() + 3 * 86_400_000) }),
        'expiring-client',
      );
      const result = await cli(['list'], soon);
      expectExit(result, 0);
      assert.match(result.stderr, /^job-cli: warning: client certificate \S+expiring-client\.pem: expires on \S+ \(in 2 days\); issue a new one with `job-worker pki client \.\.\.`$/m);
    });

    it('a limit the daemon refuses is a usage error naming the flag', async () => {
      const result = await cli(['start', '--io-read-bps', '/no/such/device=1M', '--', 'true']);
      expectExit(result, 2);
      assert.match(result.stderr, /^job-cli: (the device of an --io-\* flag|--io-read-bps): /m);
    });
  });
});
