// The job lifecycle through the Worker library: real processes, real cgroups, real state directory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { resolveBlockDevice } from '../../src/cgroup/devices';
import { JobworkerError, ValidationError } from '../../src/errors';
import { FILE_HEADER_SIZE } from '../../src/logs/format';
import { SpawnError, spawnProcess } from '../../src/native';
import { CommandError, DEFAULT_JOB_PATH, Worker, type Job } from '../../src/worker';
import { decodeJournalLine } from '../../src/worker/journal-codec';
import { mkdtempVisibleToJobs } from '../helpers/job-visible-dir';
import { scaled } from '../helpers/scale';
import { requireRoot } from '../helpers/root';
import { openTestWorker, type TestWorker } from '../helpers/worker';

let t: TestWorker;

before(async () => {
  if (requireRoot.skip === undefined) t = await openTestWorker('lifecycle');
});
after(async () => {
  await t?.cleanup();
});

async function text(job: Job, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  let out = '';
  for await (const record of job.logs({ streams: [stream] })) if (record.stream === stream) out += record.data.toString();
  return out;
}

/** Resolves once the job's stdout contains `needle` (follows the live log: no polling). */
async function outputContains(job: Job, needle: string): Promise<void> {
  let seen = '';
  for await (const record of job.logs({ follow: true, streams: ['stdout'] })) {
    seen += record.data.toString();
    if (seen.includes(needle)) return;
  }
  throw new Error(`job ended without printing ${needle}`);
}

describe('worker lifecycle', requireRoot, () => {
  it('starting → running → exited, with output, owner, times and final stats', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'echo hello; echo oops >&2'], owner: 'alice' });
    assert.equal(job.state, 'running');
    assert.ok(job.status().pid! > 0);
    const status = await job.wait();
    assert.equal(status.state, 'exited');
    assert.deepEqual(
      { exitCode: status.outcome?.exitCode, signal: status.outcome?.signal, oom: status.outcome?.oomKilled, by: status.outcome?.stoppedBy },
      { exitCode: 0, signal: null, oom: false, by: null },
    );
    assert.equal(status.outcome?.reason, 'exited with code 0');
    assert.equal(status.owner, 'alice');
    assert.ok(status.startedAt! >= status.createdAt && status.finishedAt! >= status.startedAt!);
    assert.ok(status.stats !== null, 'final stats snapshot taken before the cgroup was removed');
    assert.ok(status.log.bytes > 0);
    assert.equal(await text(job), 'hello\n');
    assert.equal(await text(job, 'stderr'), 'oops\n');
  });

  it('a non-zero exit code is failed, with the code', async () => {
    const status = await (await t.worker.start({ command: 'sh', args: ['-c', 'exit 3'] })).wait();
    assert.equal(status.state, 'failed');
    assert.equal(status.outcome?.exitCode, 3);
    assert.equal(status.outcome?.reason, 'exited with code 3');
  });

  it('death by a signal is failed, with the signal', async () => {
    const status = await (await t.worker.start({ command: 'sh', args: ['-c', 'kill -SEGV $$'] })).wait();
    assert.equal(status.state, 'failed');
    assert.equal(status.outcome?.signal, 'SIGSEGV');
    assert.equal(status.outcome?.exitCode, null);
  });

  it('an OOM kill is reported from the cgroup counter', async () => {
    const job = await t.worker.start({
      command: 'python3',
      args: ['-c', 'x = bytearray(512 << 20); print("survived")'],
      limits: { memoryBytes: 64 << 20 },
    });
    const status = await job.wait();
    assert.equal(status.state, 'failed');
    assert.equal(status.outcome?.oomKilled, true);
    assert.equal(status.outcome?.signal, 'SIGKILL');
    assert.match(status.outcome!.reason, /out of memory/);
    assert.ok(status.stats!.oomKills >= 1);
  });

  it('a job under its memory limit is not reported as OOM', async () => {
    const job = await t.worker.start({
      command: 'python3',
      args: ['-c', 'x = bytearray(8 << 20); print("ok")'],
      limits: { memoryBytes: 64 << 20 },
    });
    const status = await job.wait();
    assert.equal(status.state, 'exited');
    assert.equal(status.outcome?.oomKilled, false);
  });

  it('kills what the main process leaves behind, then removes the cgroup', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', '(sleep 1000 &) ; (setsid sleep 1000 &) ; echo $$'] });
    const status = await job.wait();
    assert.equal(status.state, 'exited');
    assert.deepEqual(await t.worker.cgroupDriver.listJobs(), []);
  });

  it('stats are live while running', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'echo ready; while :; do :; done'] });
    await outputContains(job, 'ready');
    const stats = await job.stats();
    assert.ok(stats !== null && stats.pidsCurrent >= 1);
    await job.stop({ graceMs: 0 });
  });
});

describe('start failures leave nothing behind', requireRoot, () => {
  const cases: [string, Parameters<TestWorker['worker']['start']>[0], (e: unknown) => boolean][] = [
    ['missing binary', { command: '/nonexistent/tool' }, (e) => e instanceof CommandError && e.problem === 'not-found' && e.code === 'ENOENT' && e.cause instanceof SpawnError],
    ['bad cwd', { command: 'true', cwd: '/nonexistent' }, (e) => e instanceof ValidationError && e.field === 'cwd' && e.cause instanceof SpawnError && e.cause.stage === 'chdir'],
    ['empty command', { command: '' }, (e) => e instanceof ValidationError && e.field === 'command'],
    ['NUL in an argument', { command: 'echo', args: ['a\0b'] }, (e) => e instanceof ValidationError && e.field === 'args[0]'],
    ['relative cwd', { command: 'true', cwd: 'tmp' }, (e) => e instanceof ValidationError && e.field === 'cwd'],
    ['"=" in an env name', { command: 'true', env: { 'A=B': 'c' } }, (e) => e instanceof ValidationError],
    ['negative memory limit', { command: 'true', limits: { memoryBytes: -1 } }, (e) => e instanceof ValidationError],
  ];
  for (const [name, spec, check] of cases) {
    it(name, async () => {
      const before = t.worker.list().length;
      await assert.rejects(t.worker.start(spec), check);
      assert.equal(t.worker.list().length, before);
      assert.deepEqual(await t.worker.cgroupDriver.listJobs(), []);
    });
  }
});

describe('commands that cannot run, told as a shell tells them', requireRoot, () => {
  const refused = (spec: Parameters<TestWorker['worker']['start']>[0], problem: string, message: RegExp) =>
    assert.rejects(t.worker.start(spec), (e: unknown) => {
      assert.ok(e instanceof CommandError, String(e));
      assert.equal(e.problem, problem);
      assert.equal(e.field, 'command');
      assert.match(e.message, message);
      return true;
    });

  it('not found: names the command and the PATH searched (the job\'s, else the default one)', async () => {
    await refused({ command: 'no-such-tool' }, 'not-found', new RegExp(`^command: not found: "no-such-tool" is in none of the PATH directories ${DEFAULT_JOB_PATH}$`));
    await refused({ command: 'no-such-tool', env: { PATH: '/opt/a:/opt/b' } }, 'not-found', /^command: not found: "no-such-tool" is in none of the PATH directories \/opt\/a:\/opt\/b$/);
    await refused({ command: '/nonexistent/tool' }, 'not-found', /^command: not found: \/nonexistent\/tool \(ENOENT\)$/);
  });

  it('not executable: no execute bit, not a program, a missing #! interpreter', async () => {
    const dir = mkdtempVisibleToJobs('exec');
    try {
      writeFileSync(path.join(dir, 'plain'), 'echo hi\n', { mode: 0o644 });
      writeFileSync(path.join(dir, 'garbage'), 'not a program', { mode: 0o755 });
      writeFileSync(path.join(dir, 'orphan'), '#!/nonexistent/interpreter\n', { mode: 0o755 });
      // root may execute nothing without an execute bit, so EACCES holds for the daemon's user too.
      await refused({ command: path.join(dir, 'plain') }, 'not-executable', /^command: not executable: \S+\/plain: EACCES: permission denied/);
      await refused({ command: 'plain', env: { PATH: dir } }, 'not-executable', /^command: not executable: \S+\/plain \(found in PATH \S+\): EACCES/);
      await refused({ command: path.join(dir, 'garbage') }, 'not-executable', /^command: not executable: \S+\/garbage: ENOEXEC: .*#! line$/);
      await refused({ command: path.join(dir, 'orphan') }, 'not-executable', /^command: not executable: \S+\/orphan \(its #! interpreter does not exist\)$/);
      // Found through PATH, the same (it is in a PATH directory, not "in none of them").
      await refused({ command: 'orphan', env: { PATH: `/nonexistent:${dir}` } }, 'not-executable', /^command: not executable: \S+\/orphan \(found in PATH \/nonexistent:\S+\) \(its #! interpreter does not exist\)$/);
      // An interpreter that may not be run: the interpreter is named, not the script's execute bit.
      writeFileSync(path.join(dir, 'passwd-script'), '#!/etc/passwd\n', { mode: 0o755 });
      await refused({ command: path.join(dir, 'passwd-script') }, 'not-executable', /^command: not executable: \S+\/passwd-script: its #! interpreter \/etc\/passwd is not executable \(EACCES\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a program on the host but not in the job\'s view (its private /tmp) is not found, and says why', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-exec-'));
    try {
      writeFileSync(path.join(dir, 'tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
      chmodSync(dir, 0o755);
      await refused({ command: path.join(dir, 'tool') }, 'not-found', /^command: not found: \S+\/tool \(ENOENT\): it exists on the daemon's host but not in the job's view/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the paths a request names are never opened if someone else could have made them, and a hidden one\'s existence is not told', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-exec-'));
    const secret = path.join(dir, 'secret');
    try {
      chmodSync(dir, 0o755);
      // A FIFO out of the job's view: reading its #! line would wait for a writer for ever, and the
      // daemon with it. It is not opened: the answer comes, and says only what anyone could see.
      execFileSync('mkfifo', [path.join(dir, 'fifo')]);
      await refused({ command: path.join(dir, 'fifo') }, 'not-found', /^command: not found: \S+\/fifo \(ENOENT\): it exists on the daemon's host but not in the job's view/);
      // Out of the job's view and under a directory only root may search (as the daemon's hidden
      // ones are): neither that the file exists nor what its first line says.
      mkdirSync(secret, { mode: 0o700 });
      writeFileSync(path.join(secret, 'script'), '#!/nonexistent/interpreter\n', { mode: 0o755 });
      await refused({ command: path.join(secret, 'script') }, 'not-found', /^command: not found: \S+\/script \(ENOENT\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a job\'s CPU quota applies to its command, not to its start: a long PATH search at 1 % of a CPU is answered, then the job is held to its quota', async () => {
    // 60,000 candidates to try: ~0.2 s of exec attempts here, which at 1 % of a CPU took longer than
    // the start's deadline and held a threadpool thread of the daemon meanwhile. (Under emulation an
    // exec attempt costs ~50x: 6,000 are ~1 s unthrottled there, and would be ~100 s at 1 %.)
    const longPath = Array(scaled(60_000, 6_000)).fill('/').join(':');
    await refused({ command: 'x', env: { PATH: longPath }, limits: { cpu: 0.01 } }, 'not-found', /^command: not found: "x" is in none of the PATH directories/);
    const busy = await t.worker.start({ command: 'timeout', args: ['1', 'sh', '-c', 'while :; do :; done'], limits: { cpu: 0.1 } });
    const status = await busy.wait();
    assert.ok(status.stats !== null);
    assert.ok(status.stats.cpuUsageMicros < 500_000, `1 s of a busy loop at 0.1 CPU used ${status.stats.cpuUsageMicros} µs`);
  });

  it('pids 1 with a PID namespace of its own (the default): refused naming limits.pids, since init takes one', async () => {
    await assert.rejects(t.worker.start({ command: 'true', limits: { pids: 1 } }), (e: unknown) => {
      assert.ok(e instanceof ValidationError, String(e));
      assert.equal(e.field, 'limits.pids');
      assert.match(e.message, /^limits\.pids: 1 is too few for a job with a PID namespace of its own: its init \(PID 1\) takes one and the command another; give at least 2$/);
      return true;
    });
    const two = await t.worker.start({ command: 'true', limits: { pids: 2 } });
    assert.equal((await two.wait()).outcome?.exitCode, 0);
  });

  it('a job whose environment leaves PATH out gets the default one', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'echo "$PATH|$ONLY"'], env: { ONLY: 'this' } });
    await job.wait();
    let text = '';
    for await (const record of job.logs()) text += record.data.toString();
    assert.equal(text, `${DEFAULT_JOB_PATH}|this\n`);
  });
});

describe('stop', requireRoot, () => {
  it('SIGTERM to a job that handles it: stopped, by whom, after the process is gone', async () => {
    const job = await t.worker.start({
      command: 'sh',
      args: ['-c', 'trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.05; done'],
    });
    await outputContains(job, 'ready');
    const result = await job.stop({ by: 'bob', graceMs: 10_000 });
    assert.equal(result.alreadyFinished, false);
    assert.equal(result.status.state, 'stopped');
    assert.equal(result.status.outcome?.stoppedBy, 'bob');
    assert.match(result.status.outcome!.reason, /^stopped by bob/);
    assert.equal(existsSync(`/proc/${result.status.pid}`), false);
    assert.equal(await text(job), 'ready\nbye\n');
  });

  it('a job that ignores SIGTERM is killed when the grace period ends', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'] });
    await outputContains(job, 'ready');
    const started = Date.now();
    const result = await job.stop({ graceMs: 300 });
    assert.ok(Date.now() - started >= 300);
    assert.equal(result.status.state, 'stopped');
    assert.equal(result.status.outcome?.signal, 'SIGKILL');
  });

  for (const [how, isolation] of [
    ['through its init', {}],
    ['in the host PID namespace', { namespaces: { pid: false } }],
  ] as const) {
    it(`no grace (${how}): SIGKILL at once, the stop signal is not sent first`, async () => {
      const job = await t.worker.start({ command: 'sh', args: ['-c', 'trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.05; done'], isolation });
      await outputContains(job, 'ready');
      const result = await job.stop({ graceMs: 0 });
      assert.equal(result.status.state, 'stopped');
      assert.equal(result.status.outcome?.signal, 'SIGKILL');
      assert.equal(await text(job), 'ready\n', 'the TERM trap never ran');
    });
  }

  it('stop with another signal', async () => {
    const job = await t.worker.start({ command: 'sleep', args: ['1000'] });
    const result = await job.stop({ signal: 'SIGINT' });
    assert.equal(result.status.outcome?.signal, 'SIGINT');
  });

  it('an unknown signal name is refused on the signal field and nothing is signalled', async () => {
    const job = await t.worker.start({ command: 'sleep', args: ['1000'] });
    await assert.rejects(job.stop({ signal: 'SIGNOPE' }), (error: unknown) => error instanceof ValidationError && error.field === 'signal' && /SIGNOPE/.test(error.message));
    assert.equal(job.state, 'running');
    await job.stop({ signal: 'SIGKILL' });
  });

  it("a job's record shows the limits in force: its own, the pids default filled in", async () => {
    const job = await t.worker.start({ command: 'true', limits: { memoryBytes: 64 << 20 } });
    assert.deepEqual(job.status().limits, { memoryBytes: 64 << 20, pids: 4096 });
    assert.deepEqual((await job.wait()).limits, { memoryBytes: 64 << 20, pids: 4096 });
  });

  it('stopping a finished job is a no-op that says so', async () => {
    const job = await t.worker.start({ command: 'true' });
    await job.wait();
    const result = await job.stop();
    assert.equal(result.alreadyFinished, true);
    assert.equal(result.status.state, 'exited');
  });

  it('stopping a job that an earlier stop already ended says it was already finished', async () => {
    const job = await t.worker.start({ command: 'sleep', args: ['1000'] });
    const first = await job.stop({ graceMs: 0 });
    assert.equal(first.alreadyFinished, false);
    const second = await job.stop({ graceMs: 0 });
    assert.equal(second.alreadyFinished, true);
    assert.equal(second.status.state, 'stopped');
  });

  it('two concurrent stops are one', async () => {
    const job = await t.worker.start({ command: 'sleep', args: ['1000'] });
    const first = job.stop({ by: 'one' });
    const second = job.stop({ by: 'two' });
    assert.equal(first, second);
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.status.outcome?.stoppedBy, 'one');
    assert.deepEqual(a, b);
  });

  it('stop during start: the job is stopped as soon as it runs', async () => {
    const starting = t.worker.start({ command: 'sleep', args: ['1000'], owner: 'carol' });
    const job = t.worker.list({ owner: 'carol', states: ['starting'] })[0];
    assert.ok(job, 'the job is visible while starting');
    const stopping = job.stop({ by: 'carol' });
    await starting;
    const result = await stopping;
    assert.equal(result.status.state, 'stopped');
  });

  it('a double-forking daemon is fully gone after stop', async () => {
    const job = await t.worker.start({
      command: 'sh',
      args: ['-c', '(setsid sh -c "trap \\"\\" TERM; while :; do sleep 1; done" &); echo ready; sleep 1000'],
    });
    await outputContains(job, 'ready');
    const result = await job.stop({ graceMs: 200 });
    assert.equal(result.status.state, 'stopped');
    assert.deepEqual(await t.worker.cgroupDriver.listJobs(), []);
  });
});

describe('registry', requireRoot, () => {
  it('lists by owner and state, removes finished jobs only', async () => {
    const a = await t.worker.start({ command: 'true', owner: 'dora' });
    const b = await t.worker.start({ command: 'sleep', args: ['1000'], owner: 'dora' });
    await a.wait();
    assert.deepEqual(t.worker.list({ owner: 'dora', states: ['running'] }).map((j) => j.id), [b.id]);
    assert.deepEqual(t.worker.list({ owner: 'dora' }).map((j) => j.id).sort(), [a.id, b.id].sort());
    await assert.rejects(t.worker.remove(b.id), (e: unknown) => e instanceof JobworkerError && e.kind === 'failed-precondition');
    await b.stop({ graceMs: 0 });
    await t.worker.remove(a.id);
    assert.equal(t.worker.get(a.id), undefined);
    assert.equal(existsSync(`${t.stateDir}/logs/${a.id}.log`), false);
    await assert.rejects(t.worker.remove(a.id), (e: unknown) => e instanceof JobworkerError && e.kind === 'not-found');
  });

  it('a second worker on the same state directory is refused', async () => {
    await assert.rejects(Worker.open(t.options), /in use by process/);
  });
});

describe('job user', requireRoot, () => {
  it('a job runs as a dynamic uid of its own by default, in a scratch directory it owns; both are gone when it ends', async () => {
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'id -u; id -g; id -G; pwd; stat -c "%u %g %a" .; echo x > file; cat file; sleep 1000'], owner: 'erin' });
    const status = job.status();
    const user = status.user!;
    assert.equal(user.kind, 'dynamic');
    assert.equal(user.name, null);
    assert.equal(user.gid, user.uid);
    assert.deepEqual(user.groups, []);
    assert.ok(t.worker.dynamicUids.contains(user.uid), `uid ${user.uid} is in the dynamic range`);
    const scratch = status.scratchDir!;
    assert.equal(status.cwd, scratch);
    const other = await t.worker.start({ command: 'sleep', args: ['1000'], owner: 'erin' });
    assert.notEqual(other.status().user!.uid, user.uid, 'two live jobs never share a dynamic uid, even of one owner');
    assert.notEqual(other.status().scratchDir, scratch);
    await outputContains(job, 'x\n');
    assert.equal(await text(job), `${user.uid}\n${user.uid}\n${user.uid}\n${scratch}\n${user.uid} ${user.uid} 700\nx\n`);
    await Promise.all([job.stop({ graceMs: 0 }), other.stop({ graceMs: 0 })]);
    assert.equal(existsSync(scratch), false, 'the scratch directory (and the file in it) is removed with the job');
    assert.deepEqual([...t.worker.dynamicUids.inUse], [], 'the uids are free again');
  });

  it('what a job leaves in its scratch directory goes with it: a 0000 directory too; what its links point to stays', async () => {
    const victimDir = mkdtempSync(path.join('/var/tmp', 'jw-victim-'));
    try {
      writeFileSync(path.join(victimDir, 'keep'), 'root\n');
      const script = `mkdir sub && echo y > sub/f && chmod 000 sub && ln -s ${victimDir}/keep file-link && ln -s ${victimDir} dir-link && echo done`;
      const job = await t.worker.start({ command: 'sh', args: ['-c', script], owner: 'erin' });
      const scratch = job.status().scratchDir!;
      assert.equal((await job.wait()).outcome?.exitCode, 0, await text(job));
      assert.equal(await text(job), 'done\n');
      assert.equal(existsSync(scratch), false, 'the scratch directory and everything in it are gone');
      assert.equal(readFileSync(path.join(victimDir, 'keep'), 'utf8'), 'root\n', 'the file a link pointed to is untouched');
      assert.deepEqual(readdirSync(victimDir), ['keep']);
      assert.deepEqual([...t.worker.dynamicUids.inUse], [], 'the uid is free again');
    } finally {
      rmSync(victimDir, { recursive: true, force: true });
    }
  });

  it('how a job ended is on disk before its scratch directory of many files is removed (a daemon killed meanwhile keeps it)', async () => {
    const journal = path.join(t.stateDir, 'journal');
    const job = await t.worker.start({ command: 'sh', args: ['-c', 'mkdir d && cd d && seq 1 20000 | xargs touch && exit 3'], owner: 'erin' });
    const scratch = job.status().scratchDir!;
    const exitCodeOnDisk = (): number | null | undefined => {
      let code: number | null | undefined;
      for (const line of readFileSync(journal, 'utf8').split('\n')) {
        const entry = line === '' ? undefined : decodeJournalLine(Buffer.from(line))?.entry;
        if (entry?.op === 'put' && entry.record.id === job.id && entry.record.state === 'failed') code = entry.record.outcome?.exitCode;
      }
      return code;
    };
    // Woken by every append to the journal (inotify): the first that records the end is looked at.
    const seen = await new Promise<{ code: number | null | undefined; scratchLeft: boolean }>((resolve, reject) => {
      const watcher = watch(journal, () => {
        const code = exitCodeOnDisk();
        if (code === undefined) return;
        watcher.close();
        resolve({ code, scratchLeft: existsSync(scratch) });
      });
      job.wait().then(() => {
        watcher.close();
        reject(new Error(`the job finished with its end ${exitCodeOnDisk() === undefined ? 'never' : 'only then'} seen on disk`));
      }, reject);
    });
    assert.equal(seen.code, 3);
    assert.equal(seen.scratchLeft, true, 'recorded while the scratch directory was still there');
    const status = await job.wait();
    assert.equal(status.outcome?.exitCode, 3);
    assert.equal(existsSync(scratch), false, 'and then removed, before wait() resolved');
  });

  it('a start that fails gives its dynamic uid and scratch directory back', async () => {
    await assert.rejects(t.worker.start({ command: '/nonexistent/tool' }), (e: unknown) => e instanceof CommandError && e.cause instanceof SpawnError);
    assert.deepEqual([...t.worker.dynamicUids.inUse], []);
    assert.deepEqual(readdirSync(t.worker.scratch.root), []);
  });

  it('an IO limit without a device, for a job in a scratch directory: the disk behind the scratch root', async (tc) => {
    if (!t.worker.cgroupDriver.controllers.has('io')) return tc.skip('the io controller is not available on this host');
    const onDisk = await resolveBlockDevice(undefined, t.worker.scratch.root).then(() => true, () => false);
    if (!onDisk) return tc.skip(`the scratch root ${t.worker.scratch.root} is not on a block device (tmpfs?): a device-less IO limit is refused there, rightly`);
    const job = await t.worker.start({ command: 'true', limits: { io: [{ writeBps: 5_000_000 }] } });
    await job.wait();
    const io = job.status().limits.io ?? [];
    assert.equal(io.length, 1);
    assert.equal(io[0]!.writeBps, 5_000_000);
    assert.match(io[0]!.device ?? '', /^\d+:\d+$/, 'resolved to the scratch root\'s disk');
  });

  it('a scratch path already taken fails the start, names the directory, and leaves what is there alone', async () => {
    const id = randomUUID();
    const taken = t.worker.scratch.pathOf(id);
    mkdirSync(taken, { mode: 0o700 });
    writeFileSync(path.join(taken, 'kept'), 'x');
    try {
      await assert.rejects(t.worker.start({ command: 'true' }, { id }), (e: unknown) => {
        assert.ok(e instanceof JobworkerError, String(e));
        assert.equal(e.message, `cannot create the job's scratch directory ${taken}: EEXIST`);
        return true;
      });
      assert.equal(readFileSync(path.join(taken, 'kept'), 'utf8'), 'x');
      assert.equal(statSync(taken).uid, 0, 'not given to the job\'s user');
      assert.equal(t.worker.get(id), undefined);
      assert.deepEqual([...t.worker.dynamicUids.inUse], [], 'the uid is free again');
      assert.deepEqual(await t.worker.cgroupDriver.listJobs(), [], 'the cgroup made before it was removed');
    } finally {
      rmSync(taken, { recursive: true, force: true });
    }
  });

  it('a cwd the job\'s user cannot enter fails the start with FAILED_PRECONDITION naming both', async () => {
    const dir = mkdtempVisibleToJobs('private');
    try {
      chmodSync(dir, 0o700);
      await assert.rejects(t.worker.start({ command: 'true', cwd: dir }), (e: unknown) => {
        assert.ok(e instanceof JobworkerError && e.kind === 'failed-precondition', String(e));
        assert.match(e.message, new RegExp(`^cwd ${dir}: the job's user, uid \\d+, a dynamic uid, cannot enter it \\(EACCES\\)`));
        return true;
      });
      assert.deepEqual([...t.worker.dynamicUids.inUse], []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a cwd under /tmp (private to each job) fails the start with FAILED_PRECONDITION saying why', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-host-tmp-'));
    try {
      chmodSync(dir, 0o755);
      await assert.rejects(t.worker.start({ command: 'true', cwd: dir }), (e: unknown) => {
        assert.ok(e instanceof JobworkerError && e.kind === 'failed-precondition', String(e));
        assert.match(e.message, new RegExp(`^cwd ${dir}: not a directory in the job's view of the host \\(ENOENT\\): /tmp, /var/tmp and /dev/shm are private to each job`));
        return true;
      });
      // An admin's opt-out of the mount namespace shows the host's /tmp.
      const shared = await t.worker.start({ command: 'pwd', cwd: dir, user: { uid: 0, gid: 0 }, isolation: { namespaces: { mount: false } } });
      await shared.wait();
      assert.equal(await text(shared), `${dir}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a job given a user by number or by name runs as exactly that; the default user can be set; a bad one is refused at open', async () => {
    const u = await openTestWorker('job-user', { defaults: { user: { uid: 65534, gid: 65534 } } });
    try {
      const byDefault = await u.worker.start({ command: 'sh', args: ['-c', 'id -u; id -g; id -G'], cwd: '/' });
      await byDefault.wait();
      assert.equal(await text(byDefault), '65534\n65534\n65534\n');
      assert.deepEqual(byDefault.status().user, { uid: 65534, gid: 65534, groups: [65534], name: 'nobody', kind: 'requested' });
      const byName = await u.worker.start({ command: 'id', args: ['-u'], user: { name: 'daemon', kind: 'mapped' } });
      await byName.wait();
      assert.equal(await text(byName), '1\n');
      assert.deepEqual(byName.status().user, { uid: 1, gid: 1, groups: [1], name: 'daemon', kind: 'mapped' });
      assert.equal(existsSync(byName.status().scratchDir!), false);
      const unknownUid = await u.worker.start({ command: 'sh', args: ['-c', 'id -u; id -g; id -G'], user: { uid: 4242 } });
      await unknownUid.wait();
      assert.equal(await text(unknownUid), '4242\n4242\n4242\n');
      assert.deepEqual(unknownUid.status().user, { uid: 4242, gid: 4242, groups: [], name: null, kind: 'requested' });
      const asRoot = await u.worker.start({ command: 'id', args: ['-u'], user: { uid: 0, gid: 0 } });
      await asRoot.wait();
      assert.equal(await text(asRoot), '0\n');
      await assert.rejects(u.worker.start({ command: 'true', user: { name: 'no-such-user-here' } }), (e: unknown) => e instanceof ValidationError && e.field === 'user.name');
    } finally {
      await u.cleanup();
    }
    await assert.rejects(openTestWorker('bad-user', { defaults: { user: { uid: -1, gid: 0 } } }), (e: unknown) => e instanceof ValidationError && e.field === 'defaults.user.uid');
  });
});

describe('retention', requireRoot, () => {
  it('keeps the newest finished jobs up to the count limit', async () => {
    const r = await openTestWorker('retention', { retention: { maxFinishedJobs: 3 } });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const job = await r.worker.start({ command: 'true' });
        await job.wait();
        ids.push(job.id);
      }
      assert.deepEqual(r.worker.list().map((j) => j.id), ids.slice(2));
      assert.equal(existsSync(`${r.stateDir}/logs/${ids[0]}.log`), false);
      assert.equal(existsSync(`${r.stateDir}/logs/${ids[4]}.log`), true);
      await r.worker.remove(ids[4]!); // removing one makes room: the next finish removes nothing
      const more = await r.worker.start({ command: 'true' });
      await more.wait();
      assert.deepEqual(r.worker.list().map((j) => j.id), [ids[2], ids[3], more.id]);
    } finally {
      await r.cleanup();
    }
  });

  it("beyond the count, one identity's many jobs push out its own oldest, not another identity's", async () => {
    const r = await openTestWorker('retention-owners', { retention: { maxFinishedJobs: 5 } });
    try {
      const bob = await r.worker.start({ command: 'sh', args: ['-c', 'exit 7'], owner: 'bob' });
      await bob.wait();
      const alice: string[] = [];
      for (let i = 0; i < 8; i++) {
        const job = await r.worker.start({ command: 'true', owner: 'alice' });
        await job.wait();
        alice.push(job.id);
      }
      assert.deepEqual(r.worker.list().map((j) => j.id), [bob.id, ...alice.slice(4)], "bob's job stays; alice keeps her newest four");
      assert.equal(r.worker.job(bob.id).status().outcome?.exitCode, 7);
    } finally {
      await r.cleanup();
    }
  });

  it("a removed job's log is cut to its header at once and taken over by the next job, without a trace of its output", async () => {
    const r = await openTestWorker('spare-logs');
    try {
      const old = await r.worker.start({ command: 'sh', args: ['-c', 'printf "%0500d" 7'] });
      await old.wait();
      const inode = statSync(old.logPath).ino;
      await r.worker.remove(old.id);
      assert.equal(existsSync(old.logPath), false);
      const spare = readdirSync(`${r.stateDir}/logs`).map((name) => statSync(`${r.stateDir}/logs/${name}`)).find((file) => file.ino === inode);
      assert.equal(spare?.size, FILE_HEADER_SIZE, 'the old output is gone from the disk, not only from the listing');
      const next = await r.worker.start({ command: 'echo', args: ['new'] });
      await next.wait();
      assert.equal(statSync(next.logPath).ino, inode, 'the new log is that file, renamed');
      assert.equal(await text(next), 'new\n');
    } finally {
      await r.cleanup();
    }
  });

  it('empty spare logs are made ahead once few are left (by the addon, in one batch)', async () => {
    const r = await openTestWorker('spares-ahead');
    await (await r.worker.start({ command: 'true' })).wait();
    await r.worker.close(); // waits for the batch the start set off
    try {
      const spares = readdirSync(`${r.stateDir}/logs`).filter((name) => name.startsWith('.spare-'));
      assert.equal(spares.length, 16);
      for (const name of spares) assert.equal(statSync(`${r.stateDir}/logs/${name}`).size, 0);
    } finally {
      await r.cleanup().catch(() => undefined); // already closed: only the directory is left
    }
  });

  it('a spare with old output in it (a crash mid-removal) is cut to its header when the worker opens', async () => {
    const r = await openTestWorker('spare-crash');
    await r.worker.close();
    const spare = `${r.stateDir}/logs/.spare-7`;
    writeFileSync(spare, Buffer.alloc(5000, 0x41));
    const reopened = await Worker.open(r.options);
    try {
      assert.equal(statSync(spare).size, FILE_HEADER_SIZE);
      const job = await reopened.start({ command: 'echo', args: ['after'] });
      await job.wait();
      assert.equal(existsSync(spare), false, 'taken over by the next job');
      assert.equal(await text(job), 'after\n');
    } finally {
      await reopened.close();
      await r.cleanup().catch(() => undefined); // already closed: only the directory is left
    }
  });

  it('drops finished jobs past the age limit when a worker opens', async () => {
    const r = await openTestWorker('retention-age');
    const job = await r.worker.start({ command: 'true' });
    await job.wait();
    await r.worker.close();
    const reopened = await Worker.open({ ...r.options, retention: { maxAgeMs: 1 } });
    try {
      assert.equal(reopened.get(job.id), undefined);
      assert.equal(existsSync(`${r.stateDir}/logs/${job.id}.log`), false);
    } finally {
      await reopened.close();
      await r.cleanup().catch(() => undefined); // already closed: only the directory is left
    }
  });

  it('a running job is never removed by retention', async () => {
    const r = await openTestWorker('retention-running', { retention: { maxFinishedJobs: 0 } });
    try {
      const running = await r.worker.start({ command: 'sleep', args: ['1000'] });
      const done = await r.worker.start({ command: 'true' });
      await done.wait();
      assert.deepEqual(r.worker.list().map((j) => j.id), [running.id]);
      await running.stop({ graceMs: 0 });
    } finally {
      await r.cleanup();
    }
  });
});

// The kernel keeps a uid's user keyring, and a job may make its own one it cannot write (`keyctl
// setperm @u`): the next job of that dynamic uid cannot empty it (native/spawn.cc). That job starts
// with another uid; the first is kept out of use.
describe('a dynamic uid whose keyrings a job made unusable', requireRoot, () => {
  const keyctl = process.arch === 'x64' ? 250 : process.arch === 'arm64' ? 219 : undefined;
  it('is kept out of use, and the job that drew it starts with another uid', keyctl === undefined ? { skip: `no keyctl syscall number for ${process.arch}` } : {}, async () => {
    const first = 0x6ffa_0000 + (process.pid % 0x1000) * 2;
    const warnings: { message: string; details: unknown }[] = [];
    const u = await openTestWorker('keyring-uid', { users: { dynamicUids: { first, count: 2 } }, warn: (message, details) => warnings.push({ message, details }) });
    let poisoned: number | undefined;
    try {
      // Its user keyring made one that no one may write (0x3b3b0000: all but write, possessor and user).
      const poison = await u.worker.start({ command: 'perl', args: ['-e', `syscall(${keyctl}, 5, -4, 0x3b3b0000) == 0 or die "setperm: $!"; print "done\\n"`], owner: 'mallory' });
      poisoned = poison.status().user!.uid;
      assert.equal((await poison.wait()).outcome?.exitCode, 0, await text(poison, 'stderr'));
      const other = await u.worker.start({ command: 'true', args: [], owner: 'erin' });
      assert.notEqual(other.status().user!.uid, poisoned);
      await other.wait();
      // Round robin: the next start draws the poisoned uid first.
      const next = await u.worker.start({ command: 'sh', args: ['-c', 'id -u'], owner: 'erin' });
      assert.equal((await next.wait()).outcome?.exitCode, 0);
      assert.equal(await text(next), `${next.status().user!.uid}\n`);
      assert.notEqual(next.status().user!.uid, poisoned);
      assert.ok(u.worker.dynamicUids.inUse.has(poisoned), 'the uid is kept out of use');
      assert.ok(warnings.some((w) => w.message === 'dynamic uid kept out of use until the worker reopens' && (w.details as { uid: number }).uid === poisoned), JSON.stringify(warnings));
    } finally {
      if (poisoned !== undefined) {
        // Give the keyring back to its uid (a process of it, without emptying it first), then the uid.
        const restore = spawnProcess({
          command: 'perl', args: ['-e', `syscall(${keyctl}, 5, -4, 0x3f3f0000) == 0 or die "setperm: $!"; syscall(${keyctl}, 7, -4) == 0 or die "clear: $!"`],
          env: { PATH: DEFAULT_JOB_PATH }, logPath: path.join(u.stateDir, 'restore.log'), uid: poisoned, gid: poisoned, groups: [],
        });
        assert.equal((await restore.exited).code, 0);
        u.worker.dynamicUids.release(poisoned);
      }
      await u.cleanup();
    }
  });
});
