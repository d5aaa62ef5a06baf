// The native core against real processes and a real cgroup (root: creates cgroups).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';

import { openLog, readRecords } from '../../src/logs/reader';
import { NativeError, SpawnError, spawnProcess, spawnProcessAsync, type NativeProcess, type SpawnOptions } from '../../src/native';
import { readCapturedOutput, waitForStdout } from '../helpers/log';
import { childrenOf, openFdCount, zombieChildren } from '../helpers/proc';
import { requireRoot } from '../helpers/root';
import { scaled } from '../helpers/scale';
import { hasV1Controller, TestCgroup, TestV1Cgroup } from '../helpers/test-cgroup';

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };
let dir: string;
let seq = 0;

function logPath(): string {
  return path.join(dir, `job-${seq++}.log`);
}

function run(options: Omit<SpawnOptions, 'logPath'> & { logPath?: string }) {
  const log = options.logPath ?? logPath();
  const proc = spawnProcess({ env: ENV, ...options, logPath: log });
  return { proc, log };
}

async function runToEnd(options: Omit<SpawnOptions, 'logPath'>) {
  const { proc, log } = run(options);
  const exit = await proc.exited;
  const close = await proc.closed;
  return { proc, exit, close, output: await readCapturedOutput(log) };
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-native-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('spawn', () => {
  it('runs the command with exactly the argv and environment given', async () => {
    const { exit, output } = await runToEnd({
      command: 'sh',
      args: ['-c', 'printf "%s|" "$0" "$@"; echo; env | sort', 'zero', 'a b', ''],
      env: { PATH: ENV.PATH, ONLY: 'this' },
    });
    assert.equal(exit.code, 0);
    // `sh` adds PWD and may add SHLVL itself; nothing of the daemon's environment (HOME, USER…) leaks.
    const lines = output.stdout.toString().split('\n');
    assert.equal(lines[0]!.split('|').slice(0, 3).join('|'), 'zero|a b|');
    const names = lines.slice(1).join('\n').split('\n').filter(Boolean).map((l) => l.split('=')[0]);
    for (const name of names) assert.ok(['ONLY', 'PATH', 'PWD', 'SHLVL'].includes(name!), `unexpected ${name}`);
    assert.match(output.stdout.toString(), /^ONLY=this$/m);
  });

  it('resolves the command against the job PATH, as execvp does', async () => {
    const bin = path.join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'hello-tool'), '#!/bin/sh\necho from-path\n', { mode: 0o755 });
    const { exit, output } = await runToEnd({ command: 'hello-tool', env: { PATH: `/nonexistent:${bin}:/bin` } });
    assert.equal(exit.code, 0);
    assert.equal(output.stdout.toString(), 'from-path\n');
  });

  it('gives the job only fds 0-2, default signal dispositions and an empty signal mask', async () => {
    const { output } = await runToEnd({
      command: 'sh',
      args: ['-c', 'ls /proc/self/fd; grep -E "^Sig(Blk|Ign)" /proc/self/status'],
    });
    const lines = output.stdout.toString().trim().split('\n');
    // ls itself holds fd 3 open on the directory it lists.
    assert.deepEqual(lines.slice(0, -2), ['0', '1', '2', '3']);
    assert.match(lines.at(-2)!, /^SigBlk:\s+0+$/);
    assert.match(lines.at(-1)!, /^SigIgn:\s+0+$/);
  });

  it('reads stdin from /dev/null and sets the RLIMIT_NOFILE soft limit asked for', async () => {
    const { output } = await runToEnd({ command: 'sh', args: ['-c', 'cat; ulimit -n'], nofileSoft: 1024 });
    assert.equal(output.stdout.toString(), '1024\n');
  });

  it('runs the job in its own session and process group', async () => {
    const { proc, output } = await runToEnd({ command: 'sh', args: ['-c', 'ps -o pid=,pgid=,sid= -p $$'] });
    const [pid, pgid, sid] = output.stdout.toString().trim().split(/\s+/).map(Number);
    assert.equal(pid, proc.pid);
    assert.equal(pgid, proc.pid);
    assert.equal(sid, proc.pid);
  });

  it('switches to the uid and gid asked for', requireRoot, async () => {
    const { output } = await runToEnd({ command: 'sh', args: ['-c', 'id -u; id -g'], uid: 65534, gid: 65534, groups: [] });
    assert.equal(output.stdout.toString(), '65534\n65534\n');
    const groups = await runToEnd({ command: 'id', args: ['-G'], uid: 65534, gid: 65534, groups: [] });
    assert.equal(groups.output.stdout.toString(), '65534\n');
  });
});

describe('spawn failures are typed errors, and no job runs', () => {
  it('missing binary: ENOENT at exec', () => {
    assert.throws(
      () => run({ command: '/nonexistent/tool' }),
      (error: unknown) =>
        error instanceof SpawnError && error.stage === 'exec' && error.code === 'ENOENT' && error.errno === 2 &&
        error.path === '/nonexistent/tool' && error.index === 0 && error.kind === 'invalid-argument' &&
        error.message === 'spawn failed at exec of /nonexistent/tool: ENOENT (No such file or directory)',
    );
  });

  it('a name not on PATH: ENOENT', () => {
    assert.throws(() => run({ command: 'no-such-command-here' }), { stage: 'exec', code: 'ENOENT' });
  });

  it('not executable: EACCES', () => {
    const file = path.join(dir, 'not-executable');
    writeFileSync(file, '#!/bin/sh\necho hi\n', { mode: 0o644 });
    assert.throws(() => run({ command: file }), { stage: 'exec', code: 'EACCES', path: file });
  });

  it('exec names the candidate of the job PATH it reports, by path and index', () => {
    const bin = path.join(dir, 'eacces-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'locked-tool'), '#!/bin/sh\n', { mode: 0o644 });
    // As execvp: the missing first candidate is skipped, the EACCES of the second is what is reported.
    assert.throws(() => run({ command: 'locked-tool', env: { PATH: `/nonexistent:${bin}` } }), {
      stage: 'exec',
      code: 'EACCES',
      path: path.join(bin, 'locked-tool'),
      index: 1,
    });
  });

  it('executable without a known format: ENOEXEC, never run through a shell', () => {
    const file = path.join(dir, 'no-shebang');
    writeFileSync(file, 'echo would-run-in-a-shell\n');
    chmodSync(file, 0o755);
    assert.throws(() => run({ command: file }), { stage: 'exec', code: 'ENOEXEC' });
  });

  it('bad working directory: ENOENT at chdir', () => {
    assert.throws(() => run({ command: 'true', cwd: '/nonexistent/dir' }), { stage: 'chdir', code: 'ENOENT', path: '/nonexistent/dir' });
  });

  it('an unwritable log path: the job is not started', () => {
    assert.throws(() => run({ command: 'true', logPath: '/nonexistent/dir/out.log' }), { stage: 'log', code: 'ENOENT', path: '/nonexistent/dir/out.log' });
  });

  it('the fallback path reports the same errors', () => {
    assert.throws(() => run({ command: '/nonexistent/tool', forceGatedFork: true }), { stage: 'exec', code: 'ENOENT' });
    assert.throws(() => run({ command: 'true', cwd: '/nonexistent', forceGatedFork: true }), { stage: 'chdir' });
  });

  it('leaves no zombie behind after failures', () => {
    for (let i = 0; i < 20; i++) assert.throws(() => run({ command: '/nonexistent/tool' }));
    assert.deepEqual(zombieChildren(), []);
  });
});

describe('capture', () => {
  it('captures stdout and stderr byte-exact and separately tagged', async () => {
    const script = 'for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf "no newline"';
    const { exit, output, close } = await runToEnd({ command: 'sh', args: ['-c', script] });
    assert.equal(exit.code, 0);
    assert.equal(output.stdout.toString(), 'out1\nout2\nout3\nno newline');
    assert.equal(output.stderr.toString(), 'err1\nerr2\nerr3\n');
    assert.equal(close.droppedBytes, 0);
    assert.equal(close.writeError, null);
  });

  it('an empty output gives an empty log of records', async () => {
    const { output, exit } = await runToEnd({ command: 'true' });
    assert.equal(exit.code, 0);
    assert.equal(output.records, 0);
  });

  for (const size of [1, 65535, 65536, 65537, 3 * 1024 * 1024 + 7]) {
    it(`captures ${size} bytes of binary data exactly`, async () => {
      const { exit, output } = await runToEnd({ command: 'head', args: ['-c', String(size), '/dev/urandom'] });
      assert.equal(exit.code, 0);
      assert.equal(output.stdout.length, size);
    });
  }

  const bigMiB = scaled(1024, 64);
  it(`captures ${bigMiB} MiB of binary output byte-exact (checked by SHA-256)`, { timeout: 300_000 }, async () => {
    // The job writes 1 GiB of pseudo-random bytes to stdout and their SHA-256 to stderr.
    const script = [
      'import hashlib, os, sys',
      'h = hashlib.sha256(); out = sys.stdout.buffer; block = os.urandom(1 << 20)',
      `for i in range(${bigMiB}):`,
      '    chunk = hashlib.sha256(block + i.to_bytes(4, "little")).digest() * 32768',
      '    h.update(chunk); out.write(chunk)',
      'out.flush(); sys.stderr.write(h.hexdigest())',
    ].join('\n');
    const { proc, log } = run({ command: 'python3', args: ['-c', script] });
    const exit = await proc.exited;
    await proc.closed;
    assert.equal(exit.code, 0);
    const file = await openLog(log);
    const hash = createHash('sha256');
    let bytes = 0;
    let expected = '';
    for await (const record of readRecords(file)) {
      if (record.stream === 'stdout') {
        hash.update(record.data);
        bytes += record.data.length;
      } else expected += record.data.toString();
    }
    await file.close();
    assert.equal(bytes, bigMiB << 20);
    assert.equal(hash.digest('hex'), expected);
  });

  it('stops capturing at the size cap with a marker, and keeps draining so the job is not blocked', async () => {
    const { exit, close, output } = await runToEnd({ command: 'head', args: ['-c', String(4 << 20), '/dev/zero'], logMaxBytes: 256 * 1024 });
    assert.equal(exit.code, 0);
    assert.equal(close.truncated, true);
    assert.equal(output.stdout.length, 256 * 1024);
    assert.equal(close.droppedBytes, (4 << 20) - 256 * 1024);
    assert.deepEqual(output.markers.map((m) => JSON.parse(m)), [{ event: 'truncated', limitBytes: 256 * 1024 }]);
  });

  // The cap counts the job's output, not the framing: a cap that falls inside a read, on no record
  // boundary, keeps exactly that many bytes.
  const cap = 300_001;
  it('a job writing exactly the cap keeps every byte, and gets no marker', async () => {
    const { close, output } = await runToEnd({ command: 'head', args: ['-c', String(cap), '/dev/urandom'], logMaxBytes: cap });
    assert.equal(output.stdout.length, cap);
    assert.deepEqual(output.markers, []);
    assert.equal(close.truncated, false);
    assert.equal(close.droppedBytes, 0);
  });

  it('one byte more: exactly the cap is kept, then the marker, as the last record', async () => {
    const { log, proc } = run({ command: 'head', args: ['-c', String(cap + 1), '/dev/urandom'], logMaxBytes: cap });
    await proc.exited;
    const close = await proc.closed;
    const file = await openLog(log);
    const streams: string[] = [];
    let kept = 0;
    for await (const record of readRecords(file)) {
      streams.push(record.stream);
      if (record.stream === 'stdout') kept += record.data.length;
      else assert.deepEqual(JSON.parse(record.data.toString()), { event: 'truncated', limitBytes: cap });
    }
    await file.close();
    assert.equal(kept, cap);
    assert.equal(streams.at(-1), 'marker');
    assert.equal(streams.filter((s) => s === 'marker').length, 1);
    assert.equal(close.truncated, true);
    assert.equal(close.droppedBytes, 1);
  });

  it('stdout and stderr count together toward the cap', async () => {
    const { close, output } = await runToEnd({
      command: 'sh',
      args: ['-c', 'head -c 1000 /dev/zero; head -c 1000 /dev/zero >&2'],
      logMaxBytes: 1500,
    });
    assert.equal(output.stdout.length + output.stderr.length, 1500);
    assert.equal(close.droppedBytes, 500);
    assert.equal(output.markers.length, 1);
  });

  it('no record holds more than 256 KiB of output: a bigger read becomes several records', async () => {
    // One 1 MiB write into a pipe the job grew to 1 MiB (pipe-max-size): the capture thread, woken
    // when the write is done, finds it all at once.
    const size = 1 << 20;
    const script = `import fcntl, os; fcntl.fcntl(1, 1031, ${size}); os.write(1, os.urandom(${size}))`; // F_SETPIPE_SZ
    const { log, proc } = run({ command: 'python3', args: ['-c', script] });
    assert.equal((await proc.exited).code, 0);
    await proc.closed;
    const file = await openLog(log);
    const sizes: number[] = [];
    for await (const record of readRecords(file)) sizes.push(record.data.length);
    await file.close();
    assert.equal(sizes.reduce((a, b) => a + b, 0), size);
    assert.ok(Math.max(...sizes) <= 256 * 1024, `records of ${sizes.join(', ')} bytes`);
    assert.ok(sizes.filter((n) => n === 256 * 1024).length >= 4, `big reads are cut at exactly 256 KiB: ${sizes.join(', ')}`);
  });
});

describe('log file reuse (logRecycleFrom)', () => {
  it('takes the file over in place (same inode), with nothing of what it held before', async () => {
    const spare = path.join(dir, `spare-${seq++}`);
    // A spare as the Worker leaves one, and one it never would: longer than a header, with old bytes.
    writeFileSync(spare, Buffer.concat([Buffer.from('JWLOG-old-header'), Buffer.alloc(300, 0x41)]));
    const inode = statSync(spare).ino;
    const log = logPath();
    const proc = spawnProcess({ command: 'echo', args: ['fresh'], env: ENV, logPath: log, logRecycleFrom: spare });
    await proc.exited;
    const close = await proc.closed;
    assert.equal(existsSync(spare), false);
    assert.equal(statSync(log).ino, inode);
    assert.equal(statSync(log).size, close.logBytes, 'no old bytes past the new records');
    assert.equal((await readCapturedOutput(log)).stdout.toString(), 'fresh\n');
  });

  it('a spare that is gone: the log is created as usual', async () => {
    const { proc, log } = run({ command: 'echo', args: ['ok'], logRecycleFrom: path.join(dir, 'no-such-spare') });
    await proc.exited;
    await proc.closed;
    assert.equal((await readCapturedOutput(log)).stdout.toString(), 'ok\n');
  });

  // The state directory may hold links planted there; the daemon runs as root.
  it('a spare that is a symbolic link or a hard link is not written through: a new file is made', async () => {
    for (const plant of [symlinkSync, linkSync]) {
      const target = path.join(dir, `precious-${seq++}`);
      writeFileSync(target, 'precious bytes\n');
      const spare = path.join(dir, `spare-${seq++}`);
      plant(target, spare);
      const { proc, log } = run({ command: 'echo', args: ['fresh'], logRecycleFrom: spare });
      await proc.exited;
      await proc.closed;
      assert.equal(readFileSync(target, 'utf8'), 'precious bytes\n', `${plant.name}: the target is untouched`);
      assert.equal(lstatSync(log).isFile(), true);
      assert.notEqual(statSync(log).ino, statSync(target).ino);
      assert.equal((await readCapturedOutput(log)).stdout.toString(), 'fresh\n');
    }
  });

  it('a log path that already exists (a planted link) is refused, the file it points to untouched', () => {
    const target = path.join(dir, `precious-${seq++}`);
    writeFileSync(target, 'precious bytes\n');
    const log = logPath();
    symlinkSync(target, log);
    assert.throws(() => run({ command: 'echo', args: ['x'], logPath: log }), { stage: 'log', code: 'EEXIST', path: log });
    assert.equal(readFileSync(target, 'utf8'), 'precious bytes\n');
  });
});

describe('exit', () => {
  it('reports the exit code', async () => {
    const { exit } = await runToEnd({ command: 'sh', args: ['-c', 'exit 42'] });
    assert.equal(exit.code, 42);
    assert.equal(exit.signal, null);
  });

  it('reports death by signal', async () => {
    const { exit } = await runToEnd({ command: 'sh', args: ['-c', 'kill -KILL $$'] });
    assert.equal(exit.code, null);
    assert.equal(exit.signal, 'SIGKILL');
  });

  it('"exited" means all of the output is on disk', async () => {
    const { proc, log } = run({ command: 'head', args: ['-c', String(5 << 20), '/dev/zero'] });
    const exit = await proc.exited;
    const { stdout } = await readCapturedOutput(log);
    assert.equal(stdout.length, 5 << 20);
    assert.equal(exit.logBytes, proc.logBytes);
    await proc.closed;
  });

  it('reports the exit of a job whose grandchild keeps stdout open; closeCapture ends capture', requireRoot, async () => {
    const cgroup = new TestCgroup('grandchild');
    try {
      const { proc, log } = run({ command: 'sh', args: ['-c', 'sleep 1000 & echo started'], cgroupFd: cgroup.fd });
      const exit = await proc.exited;
      assert.equal(exit.code, 0);
      assert.equal((await readCapturedOutput(log)).stdout.toString(), 'started\n');
      assert.equal(cgroup.procs().length, 1, 'the grandchild is still running');
      proc.closeCapture();
      const close = await proc.closed;
      assert.equal(close.logBytes, exit.logBytes);
    } finally {
      await cgroup.remove();
    }
  });
});

describe('exit ops and the order of events', () => {
  it('"exit" comes once the exit ops ran, "close" after it; a slow exit op holds up no other job', { timeout: 30_000 }, async () => {
    // A FIFO makes an exit op that blocks: reading it waits until someone opens it for writing.
    const fifo = path.join(dir, `exit-op-${seq++}.fifo`);
    execFileSync('mkfifo', [fifo]);
    const marker = path.join(dir, `exit-op-${seq++}.created`);
    const events: string[] = [];
    const slow = run({
      command: 'sh',
      args: ['-c', 'echo slow'],
      exitOps: [{ op: 'read', path: fifo }, { op: 'create', path: marker }],
    });
    void slow.proc.exited.then(() => events.push('slow exit'));
    void slow.proc.closed.then(() => events.push('slow close'));
    let unblocked = false;
    const unblock = (): void => {
      if (unblocked) return;
      unblocked = true;
      const writer = openSync(fifo, 'w'); // returns once the exit op has the FIFO open for reading
      writeSync(writer, 'done');
      closeSync(writer);
    };
    try {
      // Meanwhile another job runs start to finish: its capture does not wait for the exit op. (Were
      // it to, only the unblocking below could end it: the time limit turns that into a failure.)
      let timer: NodeJS.Timeout | undefined;
      const other = await Promise.race([
        runToEnd({ command: 'sh', args: ['-c', 'echo other'] }),
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 10_000))),
      ]);
      clearTimeout(timer);
      assert.equal(other?.output.stdout.toString(), 'other\n', 'the other job finished while the exit op was blocked');
      assert.deepEqual(events, [], 'the slow job reported nothing while its exit op was blocked');
      assert.equal(existsSync(marker), false);
      unblock();
      const exit = await slow.proc.exited;
      assert.equal(existsSync(marker), true, 'every exit op ran before "exit"');
      assert.deepEqual(exit.exitOps, { completed: 2, reads: ['done', null] });
      assert.equal(exit.logBytes, (await slow.proc.closed).logBytes);
      assert.equal((await readCapturedOutput(slow.log)).stdout.toString(), 'slow\n');
      assert.deepEqual(events, ['slow exit', 'slow close']);
    } finally {
      unblock();
      await slow.proc.closed;
    }
  });

  it('a failed exit op: ExitInfo.exitOps says which, with stage "exit-ops", path and errno', async () => {
    const missing = path.join(dir, 'no-such-dir-for-exit-ops');
    const { exit } = await runToEnd({ command: 'true', exitOps: [{ op: 'read', path: '/proc/self/stat' }, { op: 'rmdir', path: missing }] });
    assert.equal(exit.exitOps?.completed, 1);
    assert.equal(typeof exit.exitOps?.reads[0], 'string');
    const error = exit.exitOps?.error;
    assert.ok(error instanceof NativeError);
    assert.deepEqual([error.stage, error.code, error.path, error.index], ['exit-ops', 'ENOENT', missing, 1]);
  });
});

describe('started ops (once the process has exec\'d)', () => {
  it('have run, in order, when the spawn resolves; the process runs as usual', async () => {
    const marker = path.join(dir, 'started-op-marker');
    const proc = await spawnProcessAsync({
      command: 'echo',
      args: ['ran'],
      env: ENV,
      logPath: logPath(),
      startedOps: [{ op: 'create', path: marker }, { op: 'write', path: marker, value: 'written' }],
    });
    assert.equal(readFileSync(marker, 'utf8'), 'written');
    assert.equal((await proc.exited).code, 0);
    await proc.closed;
  });

  it('a failed one kills and reaps the process: the spawn rejects with stage "started-ops", the op and its errno', async () => {
    const missing = path.join(dir, 'no-such-dir', 'file');
    const before = openFdCount();
    await assert.rejects(
      spawnProcessAsync({ command: 'sleep', args: ['1000'], env: ENV, logPath: logPath(), startedOps: [{ op: 'write', path: missing, value: '1', optional: false }] }),
      (error) => error instanceof SpawnError && error.stage === 'started-ops' && error.code === 'ENOENT' && error.path === missing && error.index === 0,
    );
    assert.deepEqual(zombieChildren(), []);
    assert.equal(openFdCount(), before);
  });
});

describe('start deadline (a child held before its exec)', () => {
  for (const forceGatedFork of [false, true]) {
    it(`kills a child that does not reach its exec in time: ETIMEDOUT, reaped, no fd left (${forceGatedFork ? 'gated fork' : 'clone3'})`, async () => {
      const before = openFdCount();
      const started = process.hrtime.bigint();
      await assert.rejects(
        spawnProcessAsync({ command: 'true', env: ENV, logPath: logPath(), startTimeoutMs: 200, holdBeforeExecForTest: true, forceGatedFork }),
        (error) => error instanceof SpawnError && error.stage === 'clone' && error.code === 'ETIMEDOUT',
      );
      const waitedMs = Number(process.hrtime.bigint() - started) / 1e6;
      assert.ok(waitedMs >= 200 && waitedMs < 5_000, `waited ${waitedMs} ms`);
      assert.deepEqual(zombieChildren(), []);
      assert.equal(openFdCount(), before);
      // The thread is free again: the next spawn runs.
      const next = await spawnProcessAsync({ command: 'true', env: ENV, logPath: logPath(), startTimeoutMs: 200, forceGatedFork });
      assert.equal((await next.exited).code, 0);
      await next.closed;
    });

    it(`a child waiting for its exec holds none of the daemon's descriptors, only its own (${forceGatedFork ? 'gated fork' : 'clone3'})`, { skip: process.arch !== 'x64' && 'reads the pause syscall number of x86-64' }, async () => {
      // Another spawn's pipe end in its copy of the table would keep that spawn from seeing its own
      // child's exec for as long as this one is held (a SIGSTOP can hold it for ever).
      const markerPath = path.join(dir, `daemon-held-${seq++}`);
      const marker = openSync(markerPath, 'w');
      const before = new Set(childrenOf(process.pid));
      const held = spawnProcessAsync({ command: 'true', env: ENV, logPath: logPath(), startTimeoutMs: 5_000, holdBeforeExecForTest: true, forceGatedFork });
      const settled = held.then(() => 'spawned', (error: unknown) => error);
      let fds: string[] = [];
      for (const deadline = Date.now() + 4_000; Date.now() < deadline; ) {
        const child = childrenOf(process.pid).find((pid) => !before.has(pid));
        // Syscall 34 is pause: the child has reached its hold, past where it closes what it does not use.
        if (child !== undefined && readFileSync(`/proc/${child}/syscall`, 'utf8').startsWith('34 ')) {
          fds = readdirSync(`/proc/${child}/fd`).map((fd) => readlinkSync(`/proc/${child}/fd/${fd}`));
          break;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      closeSync(marker);
      assert.ok(fds.length > 0, 'found the held child');
      assert.ok(!fds.includes(markerPath), `the daemon's file is not in the child: ${fds.join(', ')}`);
      // stdin (/dev/null), the two capture pipes, and in the fallback its gate and error pipes.
      assert.ok(fds.length <= 3 + 3 + (forceGatedFork ? 2 : 0), fds.join(', '));
      const error = await settled;
      assert.ok(error instanceof SpawnError && error.code === 'ETIMEDOUT', String(error));
    });
  }
});

describe('signals', () => {
  it('delivers a signal through the pidfd to a job that traps it', async () => {
    const { proc, log } = run({
      command: 'sh',
      args: ['-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'],
    });
    await waitForStdout(proc, log, 'ready');
    assert.equal(proc.kill('SIGTERM'), true);
    const exit = await proc.exited;
    assert.equal(exit.code, 7);
    await proc.closed;
    assert.equal((await readCapturedOutput(log)).stdout.toString(), 'ready\ngot-term\n');
  });

  it('kill after the exit reports false and signals nothing', async () => {
    const { proc } = run({ command: 'true' });
    await proc.exited;
    assert.equal(proc.kill('SIGKILL'), false);
    await proc.closed;
  });

  it('a signal the kernel refuses: NativeError "signal" with the errno', async () => {
    const { proc } = run({ command: 'sleep', args: ['1000'] });
    try {
      assert.throws(() => proc.kill(9999), (error: unknown) => error instanceof NativeError && error.stage === 'signal' && error.code === 'EINVAL');
    } finally {
      proc.kill('SIGKILL');
      await proc.closed;
    }
  });

  it('rejects an unknown signal name', async () => {
    const { proc } = run({ command: 'true' });
    assert.throws(() => proc.kill('SIGNOPE' as NodeJS.Signals), /unknown signal SIGNOPE/);
    await proc.closed;
  });
});

describe('placement in cgroups', requireRoot, () => {
  for (const forceGatedFork of [false, true]) {
    const label = forceGatedFork ? 'gated fork (fallback)' : 'clone3 into the cgroup';
    it(`${label}: the job is in its cgroup from the start`, async () => {
      const cgroup = new TestCgroup('placement');
      try {
        // cat reads /proc/self/cgroup as the first thing it does after exec.
        const { proc, exit, output } = await runToEnd({
          command: 'cat',
          args: ['/proc/self/cgroup'],
          cgroupFd: cgroup.fd,
          forceGatedFork,
        });
        assert.equal(exit.code, 0);
        assert.equal(proc.gatedFork, forceGatedFork);
        const expected = cgroup.dir.slice(cgroup.dir.indexOf('/jobworker-test-'));
        assert.match(output.stdout.toString(), new RegExp(`^0::.*${expected}$`, 'm'));
      } finally {
        await cgroup.remove();
      }
    });
  }

  it('joins the v1 cgroups given before exec (hybrid hosts)', { skip: !hasV1Controller('pids') && 'no v1 pids hierarchy on this host' }, async () => {
    const cgroup = new TestCgroup('v1join');
    const pids = new TestV1Cgroup('pids', 'v1join');
    try {
      const { exit, output } = await runToEnd({
        command: 'cat',
        args: ['/proc/self/cgroup'],
        cgroupFd: cgroup.fd,
        joinTasksFds: [pids.tasksFd],
      });
      assert.equal(exit.code, 0);
      const name = path.basename(pids.dir);
      assert.match(output.stdout.toString(), new RegExp(`^\\d+:pids:.*/${name}$`, 'm'));
    } finally {
      await pids.remove();
      await cgroup.remove();
    }
  });
});

describe('no leaks', () => {
  const many = scaled(1000, 200);
  it(`${many} concurrent jobs are all reaped and leave no fd behind`, { timeout: 120_000 }, async () => {
    await runToEnd({ command: 'true' }); // warm up: the capture thread's own fds exist from here on
    const fdsBefore = openFdCount();
    const procs: NativeProcess[] = [];
    for (let i = 0; i < many; i++) {
      procs.push(run({ command: 'sh', args: ['-c', `echo job ${i}`], logPath: path.join(dir, `many-${i}.log`) }).proc);
    }
    const exits = await Promise.all(procs.map((p) => p.exited));
    await Promise.all(procs.map((p) => p.closed));
    assert.ok(exits.every((e) => e.code === 0));
    const sample = await readCapturedOutput(path.join(dir, `many-${many - 1}.log`));
    assert.equal(sample.stdout.toString(), `job ${many - 1}\n`);
    assert.equal(openFdCount(), fdsBefore);
    assert.deepEqual(zombieChildren(), []);
  });

  it('a worker thread that spawns and is terminated mid-job does not take the process down', async () => {
    const nativeIndex = require.resolve('../../src/native');
    const code = `
      const { parentPort } = require('node:worker_threads');
      const { spawnProcess } = require(${JSON.stringify(nativeIndex)});
      const p = spawnProcess({ command: 'sleep', args: ['1000'], env: { PATH: '/bin:/usr/bin' }, logPath: ${JSON.stringify(path.join(dir, 'worker.log'))} });
      parentPort.postMessage(p.pid);
    `;
    const worker = new Worker(code, { eval: true });
    const pid = await new Promise<number>((resolve) => worker.once('message', resolve));
    assert.ok(pid > 0);
    assert.ok(existsSync(`/proc/${pid}`), 'the job runs while the worker lives');
    await worker.terminate();
    // Teardown killed and reaped the worker's job: no process, no zombie, and this process lives on.
    assert.equal(existsSync(`/proc/${pid}`), false);
    assert.deepEqual(zombieChildren(), []);
  });
});

describe('spawnProcessAsync (on a threadpool thread)', () => {
  it('runs the command and captures it like spawnProcess', async () => {
    const log = logPath();
    const proc = await spawnProcessAsync({ command: 'sh', args: ['-c', 'echo async; echo err >&2; exit 4'], env: ENV, logPath: log });
    const exit = await proc.exited;
    await proc.closed;
    assert.equal(exit.code, 4);
    const output = await readCapturedOutput(log);
    assert.equal(output.stdout.toString(), 'async\n');
    assert.equal(output.stderr.toString(), 'err\n');
  });

  it('rejects with the same typed errors, and nothing runs', async () => {
    await assert.rejects(spawnProcessAsync({ command: '/nonexistent/tool', env: ENV, logPath: logPath() }), {
      stage: 'exec',
      code: 'ENOENT',
      path: '/nonexistent/tool',
    });
    await assert.rejects(spawnProcessAsync({ command: 'true', cwd: '/nonexistent', env: ENV, logPath: logPath() }), { stage: 'chdir' });
    await assert.rejects(spawnProcessAsync({ command: 'true', env: ENV, logPath: '/nonexistent/x.log' }), { stage: 'log' });
    assert.deepEqual(zombieChildren(), []);
  });

  it('places the job in its cgroup from the start', requireRoot, async () => {
    const cgroup = new TestCgroup('async-placement');
    try {
      const log = logPath();
      const proc = await spawnProcessAsync({ command: 'cat', args: ['/proc/self/cgroup'], env: ENV, logPath: log, cgroupFd: cgroup.fd });
      await proc.closed;
      const expected = cgroup.dir.slice(cgroup.dir.indexOf('/jobworker-test-'));
      assert.match((await readCapturedOutput(log)).stdout.toString(), new RegExp(`^0::.*${expected}$`, 'm'));
    } finally {
      await cgroup.remove();
    }
  });

  it('many concurrent async spawns are all reaped and leave no fd behind', async () => {
    await (await spawnProcessAsync({ command: 'true', env: ENV, logPath: logPath() })).closed;
    const fdsBefore = openFdCount();
    const procs = await Promise.all(Array.from({ length: 200 }, (_, i) => spawnProcessAsync({ command: 'sh', args: ['-c', `echo ${i}`], env: ENV, logPath: logPath() })));
    const exits = await Promise.all(procs.map((p) => p.exited));
    await Promise.all(procs.map((p) => p.closed));
    assert.ok(exits.every((e) => e.code === 0));
    assert.equal(openFdCount(), fdsBefore);
    assert.deepEqual(zombieChildren(), []);
  });
});
