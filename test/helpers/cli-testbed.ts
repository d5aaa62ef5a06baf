// One real daemon over mutual TLS for job-cli's end-to-end tests, and what those tests share: a
// test PKI to issue each identity's certificate, a HOME of job-cli's own, job-cli run as an
// identity, and gates: files a job waits for (made where isolated jobs can see them), so that a
// test decides when a job ends and every wait is on an event.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import type { TlsFilePaths } from '../../src/pki';
import { runCli, show, spawnCli, type CliProcess, type CliResult } from './cli';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from './cli-daemon';
import { mkdtempVisibleToJobs } from './job-visible-dir';
import { createTestPki, type TestPki } from './pki';

export function expectExit(result: CliResult, code: number): void {
  assert.equal(result.code, code, show(result));
}

export class CliTestbed {
  #gateCount = 0;

  private constructor(
    readonly pki: TestPki,
    readonly daemon: RunningTestDaemon,
    /** Where the daemon's config and state are. */
    readonly dir: string,
    readonly home: string,
    readonly gates: string,
  ) {}

  /** A test PKI and a daemon with its server certificate; `label` names its temporary directories. */
  static async start(label: string): Promise<CliTestbed> {
    const pki = await createTestPki();
    const dir = mkdtempSync(path.join(tmpdir(), `jobworker-${label}-`));
    const home = mkdtempSync(path.join(tmpdir(), `jobworker-${label}-home-`));
    // Jobs have a private /tmp and may run as another user: they must see the gates appear.
    const gates = mkdtempVisibleToJobs(`${label}-gates`);
    try {
      const daemon = await startTlsDaemon(label, await pki.server(), dir, mkdtempSync(path.join(dir, 'state-')));
      return new CliTestbed(pki, daemon, dir, home, gates);
    } catch (error) {
      pki.remove();
      for (const made of [dir, home, gates]) rmSync(made, { recursive: true, force: true });
      throw error;
    }
  }

  /** job-cli's environment for this daemon with these credentials. */
  env(files: TlsFilePaths): Record<string, string> {
    return { JOBWORKER_ADDR: this.daemon.address, JOBWORKER_CA: files.caPath, JOBWORKER_CERT: files.certificatePath, JOBWORKER_KEY: files.privateKeyPath };
  }

  /** Runs `job-cli ARGS…` to its end, as the identity of `files`. */
  cli(args: string[], files: TlsFilePaths): Promise<CliResult> {
    return runCli(args, { home: this.home, env: this.env(files) });
  }

  /** Starts `job-cli ARGS…`, as the identity of `files`. */
  spawn(args: string[], files: TlsFilePaths): CliProcess {
    return spawnCli(args, { home: this.home, env: this.env(files) });
  }

  /** A shell loop that waits for a new gate file, and what opens the gate. */
  gate(): { waitLoop: string; open: () => void } {
    const file = path.join(this.gates, `gate-${this.#gateCount++}`);
    return { waitLoop: `while [ ! -e ${file} ]; do sleep 0.02; done`, open: () => writeFileSync(file, '') };
  }

  /** Stops the daemon (it stops its jobs), removes what start() made, and checks no cgroup is left. */
  async stop(): Promise<void> {
    await this.daemon.stop();
    this.pki.remove();
    for (const made of [this.dir, this.home, this.gates]) rmSync(made, { recursive: true, force: true });
    assert.deepEqual(leftoverCgroups(this.daemon.cgroupRootName), []);
  }
}
