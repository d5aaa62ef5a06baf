// A real `job-worker` process (bin/job-worker.js) for tests of what only the whole daemon does:
// refusing bad certificates at start, signals, restarts. Logs are JSON lines on stderr.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

import type { TlsFilePaths } from '../../src/pki';

export const WORKER_BIN = path.join(__dirname, '..', '..', '..', 'bin', 'job-worker.js');

export interface DaemonLine {
  msg: string;
  level: string;
  [key: string]: unknown;
}

export class SpawnedDaemon {
  readonly lines: DaemonLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: { match: (line: DaemonLine) => boolean; resolve: (line: DaemonLine) => void }[] = [];
  stderrText = '';

  constructor(readonly child: ChildProcess) {
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    createInterface({ input: child.stderr! }).on('line', (text) => {
      this.stderrText += `${text}\n`;
      let line: DaemonLine;
      try {
        line = JSON.parse(text) as DaemonLine;
      } catch {
        return;
      }
      this.lines.push(line);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.match(line)) return true;
        w.resolve(line);
        return false;
      });
    });
  }

  /** Resolves with the first log line (past or future) that matches; rejects if the daemon exits first. */
  waitFor(match: (line: DaemonLine) => boolean): Promise<DaemonLine> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return Promise.race([
      new Promise<DaemonLine>((resolve) => this.#waiters.push({ match, resolve })),
      this.exited.then((exit) => {
        throw new Error(`daemon exited (${JSON.stringify(exit)}) before the expected log line; stderr:\n${this.stderrText}`);
      }),
    ]);
  }

  /** The bound gRPC port, from the "serving" line. */
  async port(): Promise<number> {
    const serving = await this.waitFor((l) => l.msg === 'serving');
    await this.waitFor((l) => l.msg === 'ready');
    return Number(String(serving.listen).split(':').pop());
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export interface DaemonSetup {
  stateDir: string;
  tls: TlsFilePaths;
  /** cgroup root name beneath the daemon's own cgroup (unique per test). */
  cgroupRootName: string;
  configDir: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** More keys for the daemon's config file (e.g. { defaults: { logMaxBytes: … } }). */
  config?: Record<string, unknown>;
  /**
   * An explicit cgroup root (a path in the unified hierarchy), e.g. from sharedCgroupRoot(): needed
   * where this process is alone in a non-root cgroup v2 (the VM's delegated layout), which a child
   * daemon cannot enable controllers beneath.
   */
  cgroupRoot?: string;
}

export function startDaemonProcess(setup: DaemonSetup): SpawnedDaemon {
  const config = path.join(setup.configDir, `daemon-${setup.cgroupRootName}.json`);
  const delegated = process.env.JOBWORKER_TEST_CGROUP_ROOT;
  writeFileSync(
    config,
    JSON.stringify(
      {
        ...setup.config,
        ...(setup.cgroupRoot !== undefined
          ? { cgroupRoot: setup.cgroupRoot }
          : delegated === undefined || delegated === ''
            ? { cgroupRootName: setup.cgroupRootName }
            : { cgroupRoot: path.posix.join(delegated, setup.cgroupRootName) }),
      },
    ),
  );
  const child = spawn(
    process.execPath,
    [
      WORKER_BIN,
      '--config', config,
      '--listen', '127.0.0.1:0',
      '--metrics-listen', '127.0.0.1:0',
      '--state-dir', setup.stateDir,
      '--tls-ca', setup.tls.caPath,
      '--tls-cert', setup.tls.certificatePath,
      '--tls-key', setup.tls.privateKeyPath,
      '--log-format', 'json',
      ...(setup.extraArgs ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...setup.env } },
  );
  return new SpawnedDaemon(child);
}
