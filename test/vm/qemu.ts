// Boots the VM under qemu and streams its serial console to our stdout until it powers off, or
// kills it when the deadline passes (a hung VM is a failure, never a pass).
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

import { MARKER, FS_DISK_SERIAL, RAW_DISK_SERIAL } from './protocol';

export interface VmSpec {
  kernel: string;
  initramfs: string;
  controlDir: string;
  /** The checkout, exported on its own: it may sit under a path the VM covers with a tmpfs (/tmp). */
  repoDir: string;
  rawDisk: string;
  fsDisk: string;
  cpus: number;
  memoryMiB: number;
  /** 'kvm' where /dev/kvm exists, else 'tcg' (emulation: several times slower). */
  accel: 'kvm' | 'tcg';
  /** qemu -cpu: see defaultCpuModel. */
  cpuModel: string;
  verbose: boolean;
  /** Whole-VM deadline. */
  timeoutMs: number;
  /** After the runner says it is done, how long poweroff may take before qemu is killed anyway. */
  shutdownGraceMs: number;
  /**
   * A console silent this long is a stalled VM (init.sh's watchdog beats every 20 s): qemu is
   * killed at once rather than at the deadline.
   */
  silenceMs: number;
  consoleLog: string;
}

export interface VmOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Killed after the runner had finished (poweroff hung): the results are complete. */
  killedAfterDone: boolean;
  /** ms from spawn to the runner's "ready" marker (kernel boot + init + node start), if seen. */
  readyMs?: number;
  /** ms from spawn to the runner's "done" marker, if seen. */
  doneMs?: number;
  totalMs: number;
  fatal?: string;
  /**
   * Why the VM was killed as stalled: its runner stopped beating (init.sh's watchdog says so, after
   * printing where every task waits), or the console went silent. The results so far are valid;
   * run-v2.ts reruns the rest in a fresh VM.
   */
  stalled?: string;
}

/**
 * Under emulation, a CPU without AVX: qemu's TCG runs SSE code 2-3 times faster than the AVX2 paths
 * that OpenSSL, V8 and glibc pick when `-cpu max` offers AVX2 (measured: SHA-256 of 256 MiB 9.9 s
 * with max, 4.1 s with Nehalem; a 256 MiB pipe 2.3 s vs 1.0 s). Nehalem is x86-64-v2.
 */
export function defaultCpuModel(accel: 'kvm' | 'tcg'): string {
  return accel === 'kvm' ? 'host' : 'Nehalem';
}

export function qemuArgs(spec: VmSpec): string[] {
  const cmdline = [
    'console=ttyS0',
    'panic=-1', // a panic reboots, -no-reboot turns that into qemu exiting
    spec.verbose ? 'loglevel=7' : 'loglevel=3', // OOM kills would flood the console otherwise
    'cgroup_no_v1=all', // pure v2: no v1 hierarchy can even be mounted
    'mitigations=off', // emulated syscalls are slow enough
    'init_on_alloc=0',
    ...(spec.verbose ? ['jobworker.verbose=1'] : []),
  ].join(' ');
  return [
    '-machine', 'pc',
    '-accel', spec.accel,
    '-cpu', spec.cpuModel,
    '-smp', String(spec.cpus),
    '-m', String(spec.memoryMiB),
    '-nodefaults', '-no-user-config', '-no-reboot',
    '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-kernel', spec.kernel, '-initrd', spec.initramfs, '-append', cmdline,
    '-device', 'virtio-rng-pci',
    // The host root, read-only; remap keeps inode numbers unique across the host's mounts.
    '-fsdev', 'local,id=host,path=/,security_model=passthrough,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=host,mount_tag=host',
    '-fsdev', `local,id=ctl,path=${spec.controlDir},security_model=passthrough`,
    '-device', 'virtio-9p-pci,fsdev=ctl,mount_tag=ctl',
    '-fsdev', `local,id=repo,path=${spec.repoDir},security_model=passthrough,readonly=on,multidevs=remap`,
    '-device', 'virtio-9p-pci,fsdev=repo,mount_tag=repo',
    '-drive', `file=${spec.rawDisk},if=none,id=raw,format=raw,cache=unsafe`,
    '-device', `virtio-blk-pci,drive=raw,serial=${RAW_DISK_SERIAL}`,
    '-drive', `file=${spec.fsDisk},if=none,id=fs,format=raw,cache=unsafe`,
    '-device', `virtio-blk-pci,drive=fs,serial=${FS_DISK_SERIAL}`,
  ];
}

export function bootVm(qemu: string, spec: VmSpec, print: (line: string) => void): Promise<VmOutcome> {
  const started = Date.now();
  const consoleLog = createWriteStream(spec.consoleLog);
  const child = spawn(qemu, qemuArgs(spec), { stdio: ['ignore', 'pipe', 'pipe'] });
  const outcome: VmOutcome = { exitCode: null, signal: null, timedOut: false, killedAfterDone: false, totalMs: 0 };
  let shutdownTimer: NodeJS.Timeout | undefined;

  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
  };
  const deadline = setTimeout(() => {
    outcome.timedOut = true;
    print(`[test:v2] the VM is still running after ${Math.round(spec.timeoutMs / 1000)} s: killing qemu (pid ${child.pid})`);
    kill();
  }, spec.timeoutMs);
  const onSignal = (signal: NodeJS.Signals): void => {
    kill();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const stall = (why: string): void => {
    if (outcome.stalled !== undefined || outcome.doneMs !== undefined) return;
    outcome.stalled = why;
    print(`[test:v2] the VM stalled: ${why}: killing qemu (pid ${child.pid})`);
    kill();
  };
  let silence: NodeJS.Timeout | undefined;
  const heard = (): void => {
    if (silence) clearTimeout(silence);
    if (outcome.doneMs !== undefined) return;
    silence = setTimeout(() => stall(`its console printed nothing for ${Math.round(spec.silenceMs / 1000)} s, not even the watchdog's beat`), spec.silenceMs);
  };
  heard();

  const onLine = (line: string): void => {
    if (line.startsWith(MARKER)) {
      const [word, ...rest] = line.slice(MARKER.length).trim().split(' ');
      if (word === 'ready') outcome.readyMs = Date.now() - started;
      if (word === 'fatal') outcome.fatal = rest.join(' ');
      if (word === 'stalled') stall(`the runner stopped (no heartbeat for ${rest.at(-1)} s; where each task waited is printed above)`);
      if (word === 'done') {
        if (silence) clearTimeout(silence);
        outcome.doneMs = Date.now() - started;
        shutdownTimer = setTimeout(() => {
          outcome.killedAfterDone = true;
          print('[test:v2] the VM did not power off after the runner finished: killing qemu');
          kill();
        }, spec.shutdownGraceMs);
      }
      if (word !== 'fatal' && !spec.verbose) return;
    }
    print(line);
  };

  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    heard();
    consoleLog.write(chunk);
    pending += chunk.replace(/\r/g, '');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.trim()) print(`[qemu] ${line}`);
  });

  return new Promise((resolve, reject) => {
    child.on('error', (error) => {
      clearTimeout(deadline);
      if (silence) clearTimeout(silence);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      if (silence) clearTimeout(silence);
      if (shutdownTimer) clearTimeout(shutdownTimer);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      if (pending) onLine(pending);
      consoleLog.end();
      outcome.exitCode = code;
      outcome.signal = signal;
      outcome.totalMs = Date.now() - started;
      resolve(outcome);
    });
  });
}
