// A job's processes through its v1 freezer cgroup (legacy hosts, no cgroup2 at all). v1 has no
// cgroup.kill and no emptiness event, so: freeze-kill-thaw, and polling cgroup.procs.
import * as path from 'node:path';

import { cgroupFsError, isCgroupGone, readControl } from '../cgroup-fs';
import { CgroupProcesses, delay, freezeKillThaw } from '../job-processes';

const FREEZE_TIMEOUT_MS = 1000;
const POLL_MS = 20;

export class FreezerProcesses extends CgroupProcesses {
  async populated(): Promise<boolean> {
    return (await this.list()).length > 0;
  }

  async freeze(): Promise<boolean> {
    if (!(await this.setState('FROZEN'))) return false;
    // FREEZING until every task has stopped; no event tells us when.
    for (const deadline = Date.now() + FREEZE_TIMEOUT_MS; Date.now() < deadline; await delay(5)) {
      if ((await readControl(this.fs, this.dir, 'freezer.state')).trim() === 'FROZEN') return true;
    }
    return false;
  }

  async thaw(): Promise<void> {
    await this.setState('THAWED');
  }

  async killAll(): Promise<void> {
    if ((await this.list()).length > 0) await freezeKillThaw(this);
  }

  async waitEmpty(timeoutMs: number): Promise<boolean> {
    for (const deadline = Date.now() + timeoutMs; ; await delay(POLL_MS)) {
      if (!(await this.populated())) return true;
      if (Date.now() >= deadline) return false;
    }
  }

  /** False when the cgroup is gone (a destroyed job has nothing to freeze). */
  private async setState(state: 'FROZEN' | 'THAWED'): Promise<boolean> {
    const file = path.join(this.dir, 'freezer.state');
    try {
      await this.fs.write(file, state);
      return true;
    } catch (error) {
      if (isCgroupGone(error)) return false;
      throw cgroupFsError(`write "${state}" to`, file, error);
    }
  }
}
