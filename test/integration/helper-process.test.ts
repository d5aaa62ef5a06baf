// The daemon's own short programs (getent, rm as a job's user) through the addon's spawn: what
// they print, how they end, their bounds, their user, and no output file left behind.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';

import { helperOutputDirectory, runHelper } from '../../src/worker/helper-process';
import { requireRoot } from '../helpers/root';

const env = { PATH: '/usr/bin:/bin' };

describe('helper processes', () => {
  it('give back stdout and the exit; stderr is dropped', async () => {
    const result = await runHelper({ command: 'sh', args: ['-c', 'echo out; echo err >&2; exit 3'], env, timeoutMs: 10_000, maxOutputBytes: 1 << 20 });
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.code, 3);
    assert.equal(result.timedOut, false);
    assert.equal(result.outputTruncated, false);
  });

  it('are killed at their timeout', async () => {
    const started = Date.now();
    const result = await runHelper({ command: 'sleep', args: ['30'], env, timeoutMs: 200, maxOutputBytes: 1024 });
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, 'SIGKILL');
    assert.ok(Date.now() - started < 10_000, 'returned long before the program would have ended');
  });

  it('keep at most maxOutputBytes of output and say so', async () => {
    const result = await runHelper({ command: 'head', args: ['-c', '100000', '/dev/zero'], env, timeoutMs: 10_000, maxOutputBytes: 1000 });
    assert.equal(result.outputTruncated, true);
    assert.ok(result.stdout.length <= 1000, `${result.stdout.length} bytes kept`);
    assert.equal(result.code, 0);
  });

  it('run as the user asked for, without supplementary groups', requireRoot, async () => {
    const result = await runHelper({ command: 'id', args: [], env, runAs: { uid: 65534, gid: 65534 }, timeoutMs: 10_000, maxOutputBytes: 4096 });
    assert.match(result.stdout, /^uid=65534\(\w+\) gid=65534\(\w+\) groups=65534\(\w+\)\n$/);
  });

  it('are forked as before where $TMPDIR cannot hold their output (a read-only /tmp), with the same answers', () => {
    const script = `
      const { runHelper } = require(${JSON.stringify(require.resolve('../../src/worker/helper-process'))});
      const env = { PATH: '/usr/bin:/bin' };
      (async () => {
        const plain = await runHelper({ command: 'sh', args: ['-c', 'echo out; echo err >&2; exit 3'], env, timeoutMs: 10000, maxOutputBytes: 1 << 20 });
        const slow = await runHelper({ command: 'sleep', args: ['30'], env, timeoutMs: 200, maxOutputBytes: 1024 });
        const big = await runHelper({ command: 'head', args: ['-c', '100000', '/dev/zero'], env, timeoutMs: 10000, maxOutputBytes: 1000 });
        const missing = await runHelper({ command: '/nonexistent/program', args: [], env, timeoutMs: 1000, maxOutputBytes: 1024 }).then(() => 'started', (e) => e.code);
        process.stdout.write(JSON.stringify({ plain, slow: [slow.timedOut, slow.signal], big: [big.outputTruncated, big.stdout.length <= 1000], missing }));
      })();`;
    const child = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, TMPDIR: '/proc/no-such-dir' }, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), {
      plain: { code: 3, signal: null, stdout: 'out\n', outputTruncated: false, timedOut: false },
      slow: [true, 'SIGKILL'],
      big: [true, true],
      missing: 'ENOENT',
    });
  });

  it('reject a program that cannot be started, and leave no output file behind', async () => {
    await assert.rejects(runHelper({ command: '/nonexistent/program', args: [], env, timeoutMs: 1000, maxOutputBytes: 1024 }), /nonexistent/);
    const failed = helperOutputDirectory();
    assert.notEqual(failed, null);
    assert.equal(existsSync(failed!), false, 'its output directory is gone');
    await runHelper({ command: 'true', args: [], env, timeoutMs: 10_000, maxOutputBytes: 1024 });
    const ran = helperOutputDirectory();
    assert.notEqual(ran, failed, 'each run has a directory of its own');
    assert.equal(existsSync(ran!), false, 'and it goes when the run ends');
  });

  it("a directory left by a process killed mid-run goes at a later process's first run; live ones, other hosts', namespaces' and users' stay", async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'helper-sweep-test-'));
    const savedTmpdir = process.env.TMPDIR;
    try {
      // A daemon killed (SIGKILL) while its helper runs: its output directory stays behind.
      const script = `
        const { runHelper, helperOutputDirectory } = require(${JSON.stringify(require.resolve('../../src/worker/helper-process'))});
        void runHelper({ command: 'sleep', args: ['1'], env: { PATH: '/usr/bin:/bin' }, timeoutMs: 10000, maxOutputBytes: 1024 });
        const poll = setInterval(() => { if (helperOutputDirectory()) { clearInterval(poll); console.log(helperOutputDirectory()); } }, 5);`;
      const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, TMPDIR: parent }, stdio: ['ignore', 'pipe', 'inherit'] });
      const [left] = (await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next()).value.split('\n') as string[];
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      assert.equal(path.dirname(left!), parent);
      assert.ok(existsSync(left!), 'the killed process left its directory');

      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').replace(/-/g, '').slice(0, 8);
      const namespace = `${boot}-${/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))![1]!}`;
      const deadPid = spawnSync('true').pid;
      const keep = (name: string): string => {
        mkdirSync(path.join(parent, name));
        return name;
      };
      const live = keep(`jobworker-helper-${namespace}-${process.ppid}-aaaaaa`);
      const foreign = keep(`jobworker-helper-${boot}-1${namespace.slice(9)}-${deadPid}-bbbbbb`);
      const otherHost = keep(`jobworker-helper-${boot === '00000000' ? '11111111' : '00000000'}${namespace.slice(8)}-${deadPid}-eeeeee`);
      const unrelated = keep('something-else');
      const target = keep('target');
      writeFileSync(path.join(parent, target, 'file'), 'kept');
      const link = `jobworker-helper-${namespace}-${deadPid}-cccccc`;
      symlinkSync(path.join(parent, target), path.join(parent, link));
      const others = process.getuid?.() === 0 ? keep(`jobworker-helper-${namespace}-${deadPid}-dddddd`) : undefined;
      if (others) chownSync(path.join(parent, others), 65534, 65534);

      process.env.TMPDIR = parent;
      const result = await runHelper({ command: 'true', args: [], env, timeoutMs: 10_000, maxOutputBytes: 1024 });
      assert.equal(result.code, 0);
      assert.deepEqual(readdirSync(parent).sort(), [live, foreign, otherHost, unrelated, target, link, ...(others ? [others] : [])].sort(), 'only the dead process\'s directory went');
      assert.equal(readlinkSync(path.join(parent, link)), path.join(parent, target));
      assert.deepEqual(readdirSync(path.join(parent, target)), ['file']);
    } finally {
      if (savedTmpdir === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmpdir;
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
