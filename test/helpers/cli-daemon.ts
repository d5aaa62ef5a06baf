// Real daemons for the CLI's end-to-end tests: `job-worker` processes (see spawned-daemon.ts) with
// TLS files from a test PKI, or in --dev mode with HOME in a temporary directory. Each has its own
// cgroup root, so test files running in parallel never share one.
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync, type Dirent } from 'node:fs';
import * as path from 'node:path';

import type { TlsFilePaths } from '../../src/pki';
import { cliEnvironment } from './cli';
import { SpawnedDaemon, startDaemonProcess, WORKER_BIN } from './spawned-daemon';
import { sweepDeadTestRootsOnce } from './cgroup-jobs';

export interface RunningTestDaemon {
  daemon: SpawnedDaemon;
  port: number;
  /** localhost:PORT (the server certificates name localhost). */
  address: string;
  cgroupRootName: string;
  /** SIGTERM (the daemon stops its jobs and removes its cgroup root), then waits for the exit. */
  stop(): Promise<void>;
}

let seq = 0;

export function cgroupRootName(label: string): string {
  return `jobworker-test-${process.pid}-${label}-${seq++}`;
}

function configFile(dir: string, name: string): string {
  const file = path.join(dir, `daemon-${name}.json`);
  const delegated = process.env.JOBWORKER_TEST_CGROUP_ROOT;
  writeFileSync(file, JSON.stringify(delegated === undefined || delegated === '' ? { cgroupRootName: name } : { cgroupRoot: path.posix.join(delegated, name) }));
  return file;
}

async function ready(daemon: SpawnedDaemon, name: string): Promise<RunningTestDaemon> {
  let port: number;
  try {
    port = await daemon.port();
  } catch (error) {
    await daemon.stop('SIGKILL');
    throw error;
  }
  return {
    daemon,
    port,
    address: `localhost:${port}`,
    cgroupRootName: name,
    async stop() {
      const exit = await daemon.stop('SIGTERM');
      if (exit.code !== 0) throw new Error(`daemon exited with ${JSON.stringify(exit)}; stderr:\n${daemon.stderrText}`);
    },
  };
}

/** A daemon on 127.0.0.1:<free port> with the given server TLS files; state in `dir`. */
export async function startTlsDaemon(label: string, tls: TlsFilePaths, dir: string, stateDir: string): Promise<RunningTestDaemon> {
  await sweepDeadTestRootsOnce();
  const name = cgroupRootName(label);
  return ready(startDaemonProcess({ stateDir, tls, cgroupRootName: name, configDir: dir, extraArgs: ['--metrics-listen', 'off'] }), name);
}

/**
 * `job-worker --dev` with HOME at `home` (dev PKI in home/.config/jobworker, state in
 * home/.local/state), as `npm start` runs it; `listen` null keeps the default address.
 */
export async function startDevDaemon(label: string, home: string, listen: string | null = '127.0.0.1:0', metricsListen = 'off'): Promise<RunningTestDaemon> {
  await sweepDeadTestRootsOnce();
  const name = cgroupRootName(label);
  const child = spawn(
    process.execPath,
    [WORKER_BIN, '--dev', '--config', configFile(home, name), '--metrics-listen', metricsListen, '--log-format', 'json', ...(listen === null ? [] : ['--listen', listen])],
    { stdio: ['ignore', 'ignore', 'pipe'], env: cliEnvironment(home) },
  );
  return ready(new SpawnedDaemon(child), name);
}

/** cgroup directories whose name starts with `prefix`, anywhere under /sys/fs/cgroup (should be none after a test). */
export function leftoverCgroups(prefix: string, dir = '/sys/fs/cgroup', depth = 0): string[] {
  if (depth > 8) return [];
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      return entry.name.startsWith(prefix) ? [full] : leftoverCgroups(prefix, full, depth + 1);
    });
}
