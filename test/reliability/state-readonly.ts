// A state directory that turns read-only or fills up while the daemon runs (a small tmpfs, always
// unmounted): what writes there (StartJob, RemoveJob) answers UNAVAILABLE (read-only) or
// RESOURCE_EXHAUSTED (full) naming the path, never INTERNAL, and changes nothing; reads go on
// (GetJob, ListJobs, StreamLogs, StopJob); everything works again once the directory does. A daemon
// started on a read-only one refuses with the path and the reason.
//
// Read-only while running: a filesystem with files open for writing (the journal) cannot be
// remounted read-only (EBUSY), so the state directory is bind-mounted onto itself and that mount
// made read-only: every new open, rename and unlink there fails with EROFS, as on a read-only
// filesystem; the journal, opened before, stays writable.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs';
import * as path from 'node:path';

import { ClientError, type JobworkerClient } from '../../src/client';
import { eventually, ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

function mounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === dir);
}

function unmountAll(dir: string): void {
  while (mounted(dir)) {
    try {
      execFileSync('umount', [dir]);
    } catch {
      execFileSync('umount', ['-l', dir]);
    }
  }
}

/** Fills the filesystem of `dir` until nothing is free. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(64 << 10, 0x5a);
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(path.dirname(file));
      if (bavail === 0) return;
      writeSync(fd, block, 0, Math.min(block.length, bavail * bsize));
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

/** The status code a call answers with ('OK' if it succeeds), and its details. */
async function answer(call: () => Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await call();
    return { code: 'OK', details: '' };
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    return { code: error.codeName, details: error.details };
  }
}

async function finishedJob(client: JobworkerClient, text: string): Promise<string> {
  const job = await client.startJob({ command: 'sh', args: ['-c', `echo ${text}`] });
  assert.ok(await eventually(async () => (await client.getJob(job.id)).state === 'exited', 30_000));
  return job.id;
}

const bigArgs = (): string[] => ['-c', 'echo big', 'sh', ...Array.from({ length: 6 }, (_, i) => String(i).repeat(100_000))];

export const stateReadonly: Scenario = {
  name: 'state-readonly',
  group: 'faults',
  title: 'state directory read-only, then full: UNAVAILABLE / RESOURCE_EXHAUSTED with the path, reads go on',
  timeoutMs: () => 4 * 60_000,
  async run(ctx: ScenarioContext) {
    const mount = path.join(ctx.workDir, 'statefs');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mount]);
    ctx.defer(() => unmountAll(mount));
    const stateDir = path.join(mount, 'state');
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'readonly', stateDir });
    ctx.defer(async () => {
      unmountAll(stateDir);
      assert.deepEqual(await daemon.close(), [], 'cgroups left');
    });
    let client = await daemon.client('ro', ['writer']);
    const kept = await finishedJob(client, 'kept');
    const running = await client.startJob({ command: 'sleep', args: ['1000'] });

    // Read-only.
    execFileSync('mount', ['--bind', stateDir, stateDir]);
    execFileSync('mount', ['-o', 'remount,bind,ro', stateDir]);
    const start = await answer(() => client.startJob({ command: 'true' }));
    const startBig = await answer(() => client.startJob({ command: 'sh', args: bigArgs() }));
    const remove = await answer(() => client.removeJob(kept));
    for (const [what, got] of [['StartJob', start], ['StartJob (big spec)', startBig], ['RemoveJob', remove]] as const) {
      assert.equal(got.code, 'UNAVAILABLE', `${what} on a read-only state directory: ${got.code} ${got.details}`);
      assert.ok(got.details.includes(stateDir) && /EROFS/.test(got.details), `${what}: ${got.details}`);
    }
    // Nothing changed, and reads go on.
    assert.equal((await jobOutput(client, { jobId: kept })).stdout.toString(), 'kept\n');
    assert.equal((await client.listAllJobs()).length, 2);
    assert.equal((await client.getJob(running.id)).state, 'running');
    assert.equal((await client.stopJob(running.id, { graceMs: 0 })).job.state, 'stopped');
    execFileSync('umount', [stateDir]);
    assert.equal((await answer(() => client.removeJob(kept))).code, 'OK', 'RemoveJob once writable again');
    const after = await finishedJob(client, 'after read-only');
    ctx.figure('read-only: StartJob / big StartJob / RemoveJob', `${start.code} / ${startBig.code} / ${remove.code}`);
    ctx.figure('read-only: StartJob details', start.details.slice(0, 160));

    // Full.
    const filler = path.join(mount, 'filler');
    fill(filler);
    const startFull = await answer(() => client.startJob({ command: 'true' }));
    const startBigFull = await answer(() => client.startJob({ command: 'sh', args: bigArgs() }));
    assert.equal(startFull.code, 'RESOURCE_EXHAUSTED', `${startFull.code} ${startFull.details}`);
    assert.equal(startBigFull.code, 'RESOURCE_EXHAUSTED', `${startBigFull.code} ${startBigFull.details}`);
    assert.ok(startFull.details.includes(stateDir) && /ENOSPC/.test(startFull.details), startFull.details);
    // Removing frees space: it may work on a full disk (the journal's last page has room) or be refused.
    const removeFull = await answer(() => client.removeJob(after));
    assert.ok(removeFull.code === 'OK' || removeFull.code === 'RESOURCE_EXHAUSTED', `RemoveJob on a full disk: ${removeFull.code} ${removeFull.details}`);
    assert.equal((await client.getJob(running.id)).state, 'stopped');
    rmSync(filler);
    await finishedJob(client, 'after full');
    ctx.figure('full: StartJob / big StartJob / RemoveJob', `${startFull.code} / ${startBigFull.code} / ${removeFull.code}`);

    // A daemon started on a read-only state filesystem refuses, naming the path and why.
    await daemon.stop();
    execFileSync('mount', ['-o', 'remount,ro', mount]);
    const refused = await daemon.restart().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.ok(refused !== undefined, 'the daemon started on a read-only state directory');
    const reason = /([^\n"]*EROFS[^\n"]*)/.exec(refused.message)?.[1] ?? refused.message;
    assert.ok(reason.includes(stateDir), reason);
    execFileSync('mount', ['-o', 'remount,rw', mount]);
    await daemon.restart();
    client = await daemon.client('ro', ['writer']);
    await finishedJob(client, 'after restart');
    ctx.figure('start on a read-only filesystem', reason.slice(0, 160));
    assert.equal(daemon.alive, true);
  },
};
