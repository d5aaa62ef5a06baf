// The addon's filesystem ops against the real kernel (root): fsOps() and a spawn's setupOps,
// which is how the Worker creates a job's cgroups, places the process in them and removes them.
// cgroup.max.descendants is a core cgroup2 file, so this runs the same on hybrid and pure v2 hosts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { readProcCgroup, unifiedPathOf } from '../../src/cgroup/proc-cgroup';
import { fsOps, NativeError, SpawnError, spawnProcessAsync, type FsOp, type NativeProcess } from '../../src/native';
import { binding } from '../../src/native/binding';
import { readCapturedOutput } from '../helpers/log';
import { requireRoot } from '../helpers/root';
import { unifiedMount } from '../helpers/test-cgroup';

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };
let logs: string;
let counter = 0;

/** A fresh cgroup path beneath this process's own cgroup (not created). */
function cgroupPath(label: string): string {
  return path.join(unifiedMount(), unifiedPathOf(readProcCgroup()) ?? '/', `jobworker-test-${process.pid}-ops-${label}-${counter++}`);
}

/** `true` spawned into the cgroup `dir` once `setupOps` have run (the tests below make one fail). */
function trueAfterSetup(dir: string, logPath: string, setupOps: FsOp[]): Promise<NativeProcess> {
  return spawnProcessAsync({ command: 'true', env: ENV, logPath, setupOps, cgroupPath: dir });
}

before(() => {
  logs = mkdtempSync(path.join(tmpdir(), 'jobworker-cgroup-ops-'));
});
after(() => {
  rmSync(logs, { recursive: true, force: true });
});

describe('fsOps on the real cgroupfs', requireRoot, () => {
  it('creates, writes, reads and removes in order; an optional missing file is skipped', async () => {
    const dir = cgroupPath('basic');
    const result = await fsOps([
      { op: 'mkdir', path: dir },
      { op: 'write', path: `${dir}/cgroup.max.descendants`, value: '5' },
      { op: 'read', path: `${dir}/cgroup.max.descendants` },
      { op: 'read', path: `${dir}/cgroup.events` },
      { op: 'read', path: `${dir}/no.such.file`, optional: true },
      { op: 'rmdir', path: dir },
    ]);
    assert.equal(result.error, undefined);
    assert.equal(result.completed, 6);
    assert.deepEqual(result.reads, [null, null, '5\n', 'populated 0\nfrozen 0\n', null, null]);
    assert.equal(existsSync(dir), false);
  });

  it('stops at the first failure and reports its errno; what came before stays done', async () => {
    const dir = cgroupPath('fail');
    try {
      const result = await fsOps([
        { op: 'mkdir', path: dir },
        { op: 'write', path: `${dir}/cgroup.max.descendants`, value: 'lots' },
        { op: 'rmdir', path: dir },
      ]);
      assert.equal(result.completed, 1);
      assert.ok(result.error instanceof NativeError);
      const { stage, code, path: failedPath, index } = result.error;
      assert.deepEqual({ stage, code, path: failedPath, index }, { stage: 'fs-ops', code: 'EINVAL', path: `${dir}/cgroup.max.descendants`, index: 1 });
      assert.match(result.error.message, /cgroup\.max\.descendants: EINVAL/);
      assert.ok(existsSync(dir), 'the rmdir after the failure did not run');
    } finally {
      await fsOps([{ op: 'rmdir', path: dir, optional: true }]);
    }
  });

  it('create makes a new empty file, never an existing one', async () => {
    const file = path.join(logs, 'created');
    const first = await fsOps([{ op: 'create', path: file }]);
    assert.equal(first.error, undefined);
    assert.equal(statSync(file).size, 0);
    assert.equal((statSync(file).mode & 0o777).toString(8), '640');
    const again = await fsOps([{ op: 'create', path: file }]);
    assert.equal(again.error?.code, 'EEXIST');
  });

  it('mkdir-private makes a 0700 directory owned by the given uid:gid, never over an existing path', async () => {
    const dir = path.join(logs, 'private');
    const made = await fsOps([{ op: 'mkdir-private', path: dir, uid: 65534, gid: 65533 }]);
    assert.equal(made.error, undefined);
    const st = statSync(dir);
    assert.deepEqual({ dir: st.isDirectory(), mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid }, { dir: true, mode: '700', uid: 65534, gid: 65533 });
    writeFileSync(path.join(dir, 'kept'), 'x');
    const again = await fsOps([{ op: 'mkdir-private', path: dir, uid: 0, gid: 0 }]);
    assert.equal(again.error?.code, 'EEXIST');
    assert.equal(statSync(dir).uid, 65534, 'the existing directory is not given away');
    assert.equal(readFileSync(path.join(dir, 'kept'), 'utf8'), 'x');
  });

  it('mkdir-private refuses an owner that is not uid:gid, before anything runs', async () => {
    const dir = path.join(logs, 'private-bad');
    await assert.rejects(fsOps([{ op: 'mkdir-private', path: dir, uid: -1, gid: 0 }]), /owner -1:0 is not a uid:gid/);
    await assert.rejects(fsOps([{ op: 'mkdir-private', path: dir, uid: 0xffffffff, gid: 0 }]), /is not a uid:gid/);
    // The addon checks the encoded form itself too.
    assert.throws(() => binding.fsOps(`p!${dir}\0nobody\0`), /a private directory's owner must be "uid:gid"/);
    assert.throws(() => binding.fsOps(`p!${dir}\u00004294967295:0\u0000`), /a private directory's owner must be "uid:gid"/);
    assert.equal(existsSync(dir), false);
  });

  it('a cgroup with a process in it is EBUSY to rmdir', async () => {
    const dir = cgroupPath('busy');
    const proc = await spawnProcessAsync({ command: 'sleep', args: ['1000'], env: ENV, logPath: path.join(logs, 'busy.log'), setupOps: [{ op: 'mkdir', path: dir }], cgroupPath: dir });
    try {
      const result = await fsOps([{ op: 'rmdir', path: dir }]);
      assert.equal(result.error?.code, 'EBUSY');
      assert.equal(result.completed, 0);
    } finally {
      proc.kill('SIGKILL');
      await proc.closed;
      const removed = await fsOps([{ op: 'rmdir', path: dir }]);
      assert.equal(removed.error, undefined);
    }
  });
});

describe('a spawn with setupOps', requireRoot, () => {
  it('creates the cgroup and writes its settings before the process is born into it', async () => {
    const dir = cgroupPath('setup');
    const logPath = path.join(logs, 'setup.log');
    const proc = await spawnProcessAsync({
      command: 'sh',
      // The setting by its effect: with no descendants allowed, the job cannot make a child cgroup.
      args: ['-c', 'cat /proc/self/cgroup; mkdir "$0/child" 2>/dev/null && echo made || echo refused', dir],
      env: ENV,
      logPath,
      setupOps: [
        { op: 'mkdir', path: dir },
        { op: 'write', path: `${dir}/cgroup.max.descendants`, value: '0' },
      ],
      cgroupPath: dir,
    });
    try {
      const exit = await proc.exited;
      await proc.closed;
      assert.equal(exit.code, 0);
      const stdout = (await readCapturedOutput(logPath)).stdout.toString();
      assert.match(stdout, new RegExp(`^0::.*/${path.basename(dir)}$`, 'm'));
      assert.match(stdout, /^refused$/m);
    } finally {
      await fsOps([{ op: 'rmdir', path: `${dir}/child`, optional: true }]);
      assert.equal((await fsOps([{ op: 'rmdir', path: dir }])).error, undefined);
    }
  });

  it('a failed setup op: SpawnError "setup" naming the op, what it created undone, no log, nothing run', async () => {
    const dir = cgroupPath('undo');
    const logPath = path.join(logs, 'undo.log');
    await assert.rejects(
      trueAfterSetup(dir, logPath, [
        { op: 'mkdir', path: dir },
        { op: 'mkdir', path: `${dir}/inner` },
        { op: 'write', path: `${dir}/inner/cgroup.max.descendants`, value: 'lots' },
      ]),
      (error) =>
        error instanceof SpawnError &&
        error.stage === 'setup' &&
        error.index === 2 &&
        error.code === 'EINVAL' &&
        error.path === `${dir}/inner/cgroup.max.descendants`,
    );
    assert.equal(existsSync(dir), false, 'both directories were removed again');
    assert.equal(existsSync(logPath), false, 'the log is created only after the setup');
  });

  it('a private directory made by a setup op is undone like a mkdir; one that failed leaves the path alone', async () => {
    const dir = cgroupPath('undo-private');
    const scratch = path.join(logs, 'undo-scratch');
    await assert.rejects(
      trueAfterSetup(dir, path.join(logs, 'undo-private.log'), [
        { op: 'mkdir', path: dir },
        { op: 'mkdir-private', path: scratch, uid: 65534, gid: 65534 },
        { op: 'write', path: `${dir}/cgroup.max.descendants`, value: 'lots' },
      ]),
      (error) => error instanceof SpawnError && error.stage === 'setup' && error.index === 2,
    );
    assert.equal(existsSync(scratch), false, 'the private directory was removed again');
    assert.equal(existsSync(dir), false);

    mkdirSync(scratch);
    writeFileSync(path.join(scratch, 'kept'), 'x');
    await assert.rejects(
      trueAfterSetup(dir, path.join(logs, 'undo-private-2.log'), [{ op: 'mkdir', path: dir }, { op: 'mkdir-private', path: scratch, uid: 65534, gid: 65534 }]),
      (error) => error instanceof SpawnError && error.stage === 'setup' && error.index === 1 && error.code === 'EEXIST' && error.path === scratch,
    );
    assert.equal(readFileSync(path.join(scratch, 'kept'), 'utf8'), 'x', 'a path that was there is not the spawn\'s to remove');
    assert.equal(statSync(scratch).uid, 0);
    assert.equal(existsSync(dir), false, 'the cgroup made before it was undone');
  });

  it('a placement path that cannot be opened: SpawnError "placement" naming it, nothing run', async () => {
    const dir = cgroupPath('missing');
    const logPath = path.join(logs, 'missing.log');
    await assert.rejects(
      spawnProcessAsync({ command: 'true', env: ENV, logPath, cgroupPath: dir }),
      (error) => error instanceof SpawnError && error.stage === 'placement' && error.code === 'ENOENT' && error.path === dir,
    );
    assert.equal(readFileSync(logPath).length > 0, true, 'the log exists (it comes first) and holds only its header');
    assert.equal((await readCapturedOutput(logPath)).stdout.length, 0);
  });
});
