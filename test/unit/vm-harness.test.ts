// The cgroup v2 VM harness's stall handling, without a VM: the host side (test/vm/qemu.ts) against
// a stand-in for qemu (a shell script that prints what a VM's console would, then hangs); the rerun
// rules (test/vm/resume.ts) with fake boots; and init.sh's watchdog itself, run by this host's sh
// against a directory of its own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';

import { MARKER, fileRuns } from '../vm/protocol';
import { bootVm, type VmSpec } from '../vm/qemu';
import { bootWithResume } from '../vm/resume';

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
    const beats = Array.from({ length: 8 }, (_, i) => `echo '${MARKER} beat ${i}'; sleep 0.5`).join('\n');
    const qemu = fakeQemu(`echo '${MARKER} ready uptime=1'\n${beats}\necho '${MARKER} done'\nsleep 0.5\nexit 0`);
    const outcome = await bootVm(qemu, spec({ silenceMs: 2500 }), () => undefined); // 4 s of beats, 0.5 s apart
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

describe('resuming after a stalled VM', () => {
  const runs = fileRuns({ layouts: ['root', 'delegated'], files: ['a.js', 'b.js'] }); // 4 file runs
  /** A fake boot per script entry: [how many file runs it finishes, whether it stalls then]. */
  const scripted = (script: [number, boolean][]) => {
    const asked: number[] = [];
    const boot = async (attempt: number, resumeAt: number) => {
      asked.push(resumeAt);
      const [finished, stalls] = script[attempt - 1]!;
      const results = runs.slice(resumeAt, resumeAt + finished).map((r) => `${r.layout}:${r.file}`);
      return { results, ...(stalls ? { stalled: `stall ${attempt}` } : {}) };
    };
    return { boot, asked };
  };

  it('reruns from the file run that stalled, once, and merges the results in order', async () => {
    const { boot, asked } = scripted([[1, true], [3, false]]);
    const logged: string[] = [];
    const outcome = await bootWithResume(runs, 2, boot, (line) => logged.push(line));
    assert.deepEqual(asked, [0, 1]);
    assert.deepEqual(outcome.results, ['root:a.js', 'root:b.js', 'delegated:a.js', 'delegated:b.js']);
    assert.equal(outcome.failed, false);
    assert.equal(outcome.stalls, 1);
    assert.match(outcome.notes[0]!, /^VM 1 stalled during b\.js \(root\), file run 2 of 4: stall 1; it and the file runs after it were done again/);
    assert.equal(logged.length, 1);
  });

  it('fails on a second stall, naming both, and boots no third VM', async () => {
    const { boot, asked } = scripted([[2, true], [0, true], [4, false]]);
    const outcome = await bootWithResume(runs, 2, boot, () => undefined);
    assert.deepEqual(asked, [0, 2]);
    assert.equal(outcome.failed, true);
    assert.equal(outcome.stalls, 2);
    assert.equal(outcome.notes.length, 2);
    assert.match(outcome.notes[1]!, /^VM 2 stalled during a\.js \(delegated\), file run 3 of 4: stall 2$/);
  });

  it("fails a stall after the last file run (the runner's own cleanup) without a rerun", async () => {
    const { boot, asked } = scripted([[4, true]]);
    const outcome = await bootWithResume(runs, 2, boot, () => undefined);
    assert.deepEqual(asked, [0]);
    assert.equal(outcome.failed, true);
    assert.deepEqual(outcome.notes, ['VM 1 stalled after its last file run: stall 1']);
  });

  it('boots once when nothing stalls', async () => {
    const { boot, asked } = scripted([[4, false]]);
    const outcome = await bootWithResume(runs, 2, boot, () => undefined);
    assert.deepEqual(asked, [0]);
    assert.equal(outcome.failed, false);
    assert.deepEqual(outcome.notes, []);
  });
});

describe("init.sh's watchdog (run on this host with its own sh, against a directory of its own)", () => {
  it('beats, calls a stall once when the heartbeat stops changing, dumps the tasks first, and re-arms when it changes again', async () => {
    const root = mkdtempSync(path.join(work, 'watchdog-'));
    mkdirSync(path.join(root, 'run'));
    const heartbeat = path.join(root, 'run', 'jobworker-vm-heartbeat');
    writeFileSync(heartbeat, '1\n');
    const initScript = path.join(__dirname, '..', '..', '..', 'test', 'vm', 'init.sh');
    const child = spawn('sh', [initScript, 'watchdog'], {
      env: { ...process.env, WATCHDOG_ROOT: root, BEAT_S: '0.1', STALL_TICKS: '3' },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true, // its own process group: killed whole at the end
    });
    const lines: string[] = [];
    const seen = (what: RegExp, after = 0) => lines.slice(after).findIndex((line) => what.test(line));
    // Each new line (or the watchdog's exit) wakes whoever waits in until().
    let wake = (): void => undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      wake();
    });
    child.on('exit', () => wake());
    const until = async (what: string, check: () => boolean) => {
      const deadline = Date.now() + 60_000;
      while (!check()) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the watchdog exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${lines.join('\n')}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${what} in 60 s:\n${lines.slice(-20).join('\n')}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    };
    try {
      // A heartbeat that changes (and a half-written one) is never a stall.
      for (let i = 2; i < 12; i++) {
        writeFileSync(heartbeat, i % 4 === 0 ? '' : `${i}\n`);
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
      await until('beats', () => lines.filter((l) => l.startsWith(`${MARKER} beat `)).length >= 5);
      assert.equal(seen(/stalled/), -1, lines.join('\n'));
      assert.equal(readFileSync(path.join(root, 'run', 'jobworker-vm-watchdog.sid'), 'utf8').trim(), String(child.pid));

      // Frozen: one stall, after the dump, and only one however long it stays frozen.
      writeFileSync(heartbeat, '42\n');
      await until('a stall', () => seen(new RegExp(`^${MARKER} stalled runner \\d+$`)) >= 0);
      const stalledAt = seen(new RegExp(`^${MARKER} stalled runner`));
      const dumpAt = seen(/^\[vm-watchdog\] the runner has not beaten for ~\d+ s/);
      assert.ok(dumpAt >= 0 && dumpAt < stalledAt, 'the dump comes first');
      assert.ok(lines.slice(dumpAt, stalledAt).some((l) => l.includes(`pid ${child.pid} task ${child.pid}`)), 'the dump lists the tasks (the watchdog itself among them)');
      const beatsAfter = lines.length;
      await until('more beats', () => lines.slice(beatsAfter).filter((l) => l.startsWith(`${MARKER} beat `)).length >= 5);
      assert.equal(lines.filter((l) => l.startsWith(`${MARKER} stalled`)).length, 1);

      // Beating again re-arms it: a later freeze is called again.
      writeFileSync(heartbeat, '43\n');
      const rearmedAt = lines.length;
      await until('a second stall', () => seen(new RegExp(`^${MARKER} stalled runner`), rearmedAt) >= 0);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
  });
});
