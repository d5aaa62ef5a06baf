// The state directory's filesystem fills up (a small tmpfs mounted for the scenario and always
// unmounted): capture fails in a controlled way — the job keeps running, its log keeps every byte
// that fitted, the gap is recorded (log.write_error ENOSPC, dropped bytes counted, a `dropped`
// marker once writing works again) — the daemon keeps serving, and everything works again once
// space returns.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { ClientError, type JobworkerClient } from '../../src/client';
import { eventually, ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

function seqText(from: number, to: number): string {
  let text = '';
  for (let i = from; i <= to; i++) text += `${i}\n`;
  return text;
}

function mounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === dir);
}

function unmount(dir: string): void {
  if (!mounted(dir)) return;
  try {
    execFileSync('umount', [dir]);
  } catch {
    execFileSync('umount', ['-l', dir]); // busy (a process still has a file open): detach it now
  }
}

/** Fills the filesystem of `dir` until at most `leave` bytes are free. */
function fill(file: string, leave: number): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(64 << 10, 0x5a);
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(path.dirname(file));
      const free = bavail * bsize;
      if (free <= leave) return;
      writeSync(fd, block, 0, Math.min(block.length, free - leave));
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

async function output(client: JobworkerClient, jobId: string): Promise<{ stdout: string; stderr: string; markers: string[] }> {
  const { stdout, stderr, markers } = await jobOutput(client, { jobId });
  return { stdout: stdout.toString(), stderr: stderr.toString(), markers };
}

export const diskFull: Scenario = {
  name: 'disk-full',
  group: 'faults',
  title: 'disk full under the state directory (a small tmpfs), then space returns',
  timeoutMs: () => 4 * 60_000,
  async run(ctx: ScenarioContext) {
    const mount = path.join(ctx.workDir, 'statefs');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mount]);
    ctx.defer(() => unmount(mount));
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'diskfull', stateDir: path.join(mount, 'state') });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const client = await daemon.client('full', ['writer']);

    // A job that writes ~2 MB (more than fits), then waits, then writes again.
    const filler = path.join(mount, 'filler');
    fill(filler, 512 << 10);
    const first = 300_000;
    const job = await client.startJob({
      command: 'sh',
      // ./go: in the job's scratch directory (its working directory), which the test can reach
      // and the job can see (its /tmp is its own, and the work directory is closed to its uid).
      args: ['-c', `seq 1 ${first}; echo waiting >&2; while [ ! -e go ]; do sleep 0.05; done; seq ${first + 1} ${first + 10_000}`],
    });
    const go = path.join(job.cwd, 'go');
    assert.ok(await eventually(async () => Number((await client.getJob(job.id)).log!.sizeBytes) > 0, 10_000));
    await delay(2000); // it has written everything and waits; most of it did not fit

    // The daemon keeps serving while the disk is full.
    const during = await client.getJob(job.id);
    assert.equal(during.state, 'running');
    const listed = await client.listJobs();
    assert.equal(listed.jobs.length, 1);
    let refused = 'OK';
    try {
      const extra = await client.startJob({ command: 'true' });
      await eventually(async () => (await client.getJob(extra.id)).state !== 'running', 10_000);
    } catch (error) {
      assert.ok(error instanceof ClientError, String(error));
      refused = `${error.codeName}: ${error.details}`;
      assert.notEqual(error.codeName, 'INTERNAL', `a start on a full disk answered ${refused}`);
    }
    ctx.figure('StartJob on a full disk', refused.split(':')[0]!);
    assert.equal(daemon.alive, true);

    // Space returns; the job goes on and finishes.
    rmSync(filler);
    const { bavail, bsize } = statfsSync(mount);
    ctx.log(`space back: ${((bavail * bsize) / (1 << 20)).toFixed(1)} MiB free`);
    closeSync(openSync(go, 'w'));
    assert.ok(await eventually(async () => (await client.getJob(job.id)).state !== 'running', 30_000), 'the job did not finish');
    const final = await client.getJob(job.id);
    assert.equal(final.state, 'exited', final.outcome.reason ?? undefined);
    assert.equal(final.log!.writeError, 'ENOSPC');
    const dropped = Number(final.log!.droppedBytes);
    assert.ok(dropped > 0);

    // The log: a clean prefix of what was written, the gap, then the rest exactly.
    const log = await output(client, job.id);
    const before = seqText(1, first);
    const afterText = seqText(first + 1, first + 10_000);
    assert.ok(log.stdout.endsWith(afterText), 'output written after space returned is missing');
    const kept = log.stdout.slice(0, log.stdout.length - afterText.length);
    assert.ok(kept.length > 0 && kept.length < before.length, `kept ${kept.length} of ${before.length} bytes`);
    assert.equal(kept, before.slice(0, kept.length), 'the kept bytes are not a prefix of what the job wrote');
    assert.equal(log.markers.length, 1, `markers: ${log.markers.join(' ')}`);
    const marker = JSON.parse(log.markers[0]!) as { event: string; reason: string; error: string; bytes: number };
    assert.deepEqual({ event: marker.event, reason: marker.reason, error: marker.error }, { event: 'dropped', reason: 'write-error', error: 'ENOSPC' });
    assert.equal(marker.bytes, before.length - kept.length + 'waiting\n'.length, 'the marker counts exactly the bytes lost');
    assert.equal(dropped, marker.bytes, 'dropped_bytes');

    // New jobs work; their logs are whole.
    const fresh = await client.startJob({ command: 'sh', args: ['-c', `seq 1 100000`] });
    assert.ok(await eventually(async () => (await client.getJob(fresh.id)).state === 'exited', 30_000));
    assert.equal((await output(client, fresh.id)).stdout, seqText(1, 100_000));
    assert.equal((await client.getJob(fresh.id)).log.writeError, null);

    ctx.figure('bytes written', before.length + 'waiting\n'.length + afterText.length);
    ctx.figure('bytes kept before the gap', kept.length);
    ctx.figure('bytes dropped (marker = dropped_bytes)', dropped);
    ctx.figure('write_error', final.log!.writeError);
    ctx.figure('daemon survived', daemon.alive);
    // What was recorded survives a restart.
    await daemon.stop();
    await daemon.restart();
    const again = await daemon.client('full', ['writer']);
    const reread = await again.getJob(job.id);
    assert.equal(reread.log!.writeError, 'ENOSPC');
    assert.equal(Number(reread.log!.droppedBytes), dropped);
    assert.equal((await output(again, job.id)).stdout, log.stdout);
  },
};
