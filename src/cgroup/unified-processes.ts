// A job's processes through its cgroup2 directory. Works in the controller-less unified hierarchy of
// a hybrid host too: cgroup.procs, cgroup.events, cgroup.freeze (kernel >= 5.2) and cgroup.kill
// (>= 5.14) are core cgroup2 files, not controllers.
import { watch, type FSWatcher } from 'node:fs';
import * as path from 'node:path';

import { cgroupFsError, isCgroupGone, parseFlatKeyed, type CgroupFs } from './cgroup-fs';
import { CgroupProcesses, freezeKillThaw } from './job-processes';

/** How long a freeze may take before we signal anyway (a task in uninterruptible sleep delays it). */
const FREEZE_TIMEOUT_MS = 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Resolves true once `test` holds for the cgroup's cgroup.events, false after timeoutMs; `ifGone`
 * when the cgroup does not exist. Waits on inotify (the kernel notifies cgroup.events changes),
 * not by polling.
 */
export async function waitForEvents(
  fs: CgroupFs,
  dir: string,
  test: (events: Map<string, number>) => boolean,
  timeoutMs: number,
  ifGone: boolean,
): Promise<boolean> {
  const file = path.join(dir, 'cgroup.events');
  // Usually it already holds (a reaped job's cgroup is empty by then): no watch, no timer.
  try {
    if (test(parseFlatKeyed(await fs.read(file)))) return true;
  } catch (error) {
    if (isCgroupGone(error)) return ifGone;
    throw cgroupFsError('read', file, error);
  }
  return new Promise<boolean>((resolve, reject) => {
    let settled = false;
    let watcher: FSWatcher | undefined;
    let checking = false;
    let again = false;
    const finish = (result: boolean | Error): void => {
      if (settled) return;
      settled = true;
      watcher?.close();
      clearTimeout(timer);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    // Changes seen while a read is in flight trigger one more read: no wake-up is lost.
    const check = async (): Promise<void> => {
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          let text: string;
          try {
            text = await fs.read(file);
          } catch (error) {
            if (isCgroupGone(error)) return finish(ifGone);
            return finish(cgroupFsError('read', file, error));
          }
          if (test(parseFlatKeyed(text))) return finish(true);
        } while (again && !settled);
      } finally {
        checking = false;
      }
    };
    // At the deadline, one last look: a zero timeout still answers for the present state.
    const timer = setTimeout(() => {
      fs.read(file).then(
        (text) => finish(test(parseFlatKeyed(text))),
        (error: unknown) => finish(isCgroupGone(error) ? ifGone : cgroupFsError('read', file, error)),
      );
    }, Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS));
    try {
      watcher = watch(file, { persistent: true }, () => void check());
      // The file vanishing (cgroup removed) ends the watch with an error: the read then says ENOENT.
      watcher.on('error', () => void check());
    } catch (error) {
      if (isCgroupGone(error)) return finish(ifGone);
      return finish(error as Error);
    }
    void check();
  });
}

export class UnifiedProcesses extends CgroupProcesses {
  async populated(): Promise<boolean> {
    try {
      return parseFlatKeyed(await this.fs.read(path.join(this.dir, 'cgroup.events'))).get('populated') === 1;
    } catch (error) {
      if (isCgroupGone(error)) return false;
      throw cgroupFsError('read', path.join(this.dir, 'cgroup.events'), error);
    }
  }

  async freeze(): Promise<boolean> {
    if (!(await this.writeIfPresent('cgroup.freeze', '1'))) return false;
    return waitForEvents(this.fs, this.dir, (events) => events.get('frozen') === 1 || events.get('populated') === 0, FREEZE_TIMEOUT_MS, false);
  }

  async thaw(): Promise<void> {
    await this.writeIfPresent('cgroup.freeze', '0');
  }

  async killAll(): Promise<void> {
    if (await this.writeIfPresent('cgroup.kill', '1')) return;
    if (!(await this.exists())) return;
    await freezeKillThaw(this); // kernel < 5.14
  }

  waitEmpty(timeoutMs: number): Promise<boolean> {
    return waitForEvents(this.fs, this.dir, (events) => events.get('populated') === 0, timeoutMs, true);
  }

  /** False when the file (old kernel) or the whole cgroup is missing. */
  private async writeIfPresent(file: string, value: string): Promise<boolean> {
    try {
      await this.fs.write(path.join(this.dir, file), value);
      return true;
    } catch (error) {
      if (isCgroupGone(error)) return false;
      throw cgroupFsError(`write "${value}" to`, path.join(this.dir, file), error);
    }
  }

  private async exists(): Promise<boolean> {
    try {
      await this.fs.read(path.join(this.dir, 'cgroup.events'));
      return true;
    } catch (error) {
      if (isCgroupGone(error)) return false;
      throw cgroupFsError('read', path.join(this.dir, 'cgroup.events'), error);
    }
  }
}
