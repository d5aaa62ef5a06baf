// The cgroup v2 VM harness's stall handling (test/vm/qemu.ts, protocol.ts), against a stand-in for
// qemu: a shell script that prints what a VM's console would and then hangs. No VM is booted here.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { MARKER, fileRuns } from '../vm/protocol';
import { bootVm, type VmSpec } from '../vm/qemu';

const work = mkdtempSync(path.join(tmpdir(), 'vm-harness-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

let scripts = 0;
/** A fake qemu running `body` (sh); bootVm passes it qemu's arguments, which it ignores. */
function fakeQemu(body: string): string {
  const file = path.join(work, `qemu-${scripts++}.sh`);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function spec(overrides: Partial<VmSpec>): VmSpec {
  return {
    kernel: '/nonexistent',
    initramfs: '/nonexistent',
    controlDir: work,
    repoDir: work,
    rawDisk: '/nonexistent',
    fsDisk: '/nonexistent',
    cpus: 1,
    memoryMiB: 64,
    accel: 'tcg',
    cpuModel: 'Nehalem',
    verbose: false,
    timeoutMs: 30_000,
    shutdownGraceMs: 30_000,
    silenceMs: 30_000,
    consoleLog: path.join(work, `console-${scripts}.log`),
    ...overrides,
  };
}

describe('the v2 VM harness', () => {
  it('kills a VM whose watchdog says the runner stalled, at once, and says so; the dump lines are printed', async () => {
    const printed: string[] = [];
    const started = Date.now();
    const qemu = fakeQemu(`echo '${MARKER} ready uptime=1'\necho '[vm-watchdog] pid 145 task 145 [D (disk sleep)] wchan=p9_client_rpc'\necho '${MARKER} stalled runner 131'\nexec sleep 60`);
    const outcome = await bootVm(qemu, spec({}), (line) => printed.push(line));
    assert.match(outcome.stalled ?? '', /the runner stopped \(no heartbeat for 131 s/);
    assert.equal(outcome.signal, 'SIGKILL');
    assert.equal(outcome.timedOut, false);
    assert.ok(Date.now() - started < 10_000, 'long before the deadline');
    assert.ok(printed.some((line) => line.includes('wchan=p9_client_rpc')), printed.join('\n'));
  });

  it('kills a VM whose console went silent (not even the beat), and says so', async () => {
    const qemu = fakeQemu(`echo '${MARKER} ready uptime=1'\necho '${MARKER} beat 20'\nexec sleep 60`);
    const outcome = await bootVm(qemu, spec({ silenceMs: 300 }), () => undefined);
    assert.match(outcome.stalled ?? '', /printed nothing for 0 s, not even the watchdog's beat/);
    assert.equal(outcome.signal, 'SIGKILL');
  });

  it('leaves alone a VM that beats, however long a file takes, and one that finished', async () => {
    const beats = Array.from({ length: 8 }, (_, i) => `echo '${MARKER} beat ${i}'; sleep 0.25`).join('\n');
    const qemu = fakeQemu(`echo '${MARKER} ready uptime=1'\n${beats}\necho '${MARKER} done'\nsleep 0.5\nexit 0`);
    const outcome = await bootVm(qemu, spec({ silenceMs: 1000 }), () => undefined); // 2 s of beats, 0.25 s apart
    assert.equal(outcome.stalled, undefined);
    assert.equal(outcome.exitCode, 0);
    assert.notEqual(outcome.doneMs, undefined);
  });

  it('orders the file runs layout by layout, as a resumed VM counts them', () => {
    const runs = fileRuns({ layouts: ['root', 'delegated'], files: ['a.js', 'b.js'] });
    assert.deepEqual(
      runs.map((r) => `${r.layout}:${r.index}:${r.file}`),
      ['root:0:a.js', 'root:1:b.js', 'delegated:0:a.js', 'delegated:1:b.js'],
    );
  });
});
