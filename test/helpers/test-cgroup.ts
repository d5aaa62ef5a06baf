// Bare cgroups for tests that need a placement target, created beneath this process's own cgroup
// and always removed (killing anything left inside first).
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmdirSync, writeFileSync, statfsSync } from 'node:fs';
import * as path from 'node:path';

import { readProcCgroup, unifiedPathOf, v1PathOf } from '../../src/cgroup/proc-cgroup';

const CGROUP2_MAGIC = 0x63677270;
let counter = 0;

/** Where the unified (v2) hierarchy is mounted here: /sys/fs/cgroup or /sys/fs/cgroup/unified. */
export function unifiedMount(): string {
  if (statfsSync('/sys/fs/cgroup').type === CGROUP2_MAGIC) return '/sys/fs/cgroup';
  if (existsSync('/sys/fs/cgroup/unified') && statfsSync('/sys/fs/cgroup/unified').type === CGROUP2_MAGIC)
    return '/sys/fs/cgroup/unified';
  throw new Error('no cgroup2 hierarchy mounted');
}

export class TestCgroup {
  readonly dir: string;
  readonly fd: number;

  constructor(label: string) {
    const own = unifiedPathOf(readProcCgroup()) ?? '/';
    this.dir = path.join(unifiedMount(), own, `jobworker-test-${process.pid}-${label}-${counter++}`);
    mkdirSync(this.dir);
    this.fd = openSync(this.dir, 'r');
  }

  procs(): number[] {
    return readFileSync(path.join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  populated(): boolean {
    return /^populated 1$/m.test(readFileSync(path.join(this.dir, 'cgroup.events'), 'utf8'));
  }

  /** cgroup.kill, wait until empty, rmdir. */
  async remove(): Promise<void> {
    closeSync(this.fd);
    if (this.populated()) writeFileSync(path.join(this.dir, 'cgroup.kill'), '1');
    for (let i = 0; i < 500 && this.populated(); i++) await new Promise((r) => setTimeout(r, 10));
    rmdirSync(this.dir);
  }
}

/** A cgroup in a v1 controller hierarchy (hybrid hosts), with its `tasks` open for joining. */
export class TestV1Cgroup {
  readonly dir: string;
  readonly tasksFd: number;

  constructor(controller: string, label: string) {
    const own = v1PathOf(readProcCgroup(), controller);
    if (own === undefined) throw new Error(`no v1 ${controller} hierarchy`);
    this.dir = path.join('/sys/fs/cgroup', controller, own, `jobworker-test-${process.pid}-${label}-${counter++}`);
    mkdirSync(this.dir);
    this.tasksFd = openSync(path.join(this.dir, 'tasks'), 'w');
  }

  async remove(): Promise<void> {
    closeSync(this.tasksFd);
    for (let i = 0; i < 500; i++) {
      try {
        rmdirSync(this.dir);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EBUSY') throw error;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    rmdirSync(this.dir);
  }
}

export function hasV1Controller(controller: string): boolean {
  return v1PathOf(readProcCgroup(), controller) !== undefined && existsSync(path.join('/sys/fs/cgroup', controller));
}
