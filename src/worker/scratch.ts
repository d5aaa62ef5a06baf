// Scratch directories: a job given no working directory gets <root>/<job id>, mode 0700, owned by
// the job's uid and gid: the one place on the host's disk it may write (besides its private /tmp,
// /var/tmp and /dev/shm, which die with its mount namespace). The root is root's, 0711: a job can
// reach its own directory by path but cannot list or enter anyone else's.
//
// Removal runs with the job's own credentials first: `rm -rf` as the job's uid (a child process,
// no shell, supplementary groups dropped), so a symlink or a rename planted by the job, or by
// another job of the same mapped user racing the removal, can only make it delete what that user
// could delete anyway. Root then removes the emptied directory itself (root owns its parent, so the
// job cannot have swapped it). An empty directory, the common case, costs one rmdir and no process.
// With `keep`, the directory stays, handed to root (0:0, 0700): a dynamic uid leaves nothing it
// owns reachable, and its number can safely be given to another job.
import { chmod, chown, lstat, mkdir, readdir, rmdir } from 'node:fs/promises';
import * as path from 'node:path';

import { JobworkerError, errorCode, systemError } from '../errors';
import type { FsOp } from '../native';
import { runHelper } from './helper-process';

export interface ScratchOwner {
  uid: number;
  gid: number;
}

const TOOL_ENV = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };

/** Runs `file` as `owner` (no supplementary groups) to its end; its output is not kept. */
async function runAs(owner: ScratchOwner, file: string, args: readonly string[]): Promise<void> {
  // Failures are expected (rm cannot remove the directory itself): what is left is checked after.
  // The addon's spawn, not a fork of the daemon (./helper-process.ts).
  await runHelper({ command: file, args, env: TOOL_ENV, runAs: owner, timeoutMs: 120_000, maxOutputBytes: 64 << 10 }).catch(() => undefined);
}

/**
 * The op that makes a job's directory, 0700 and owned by it: run by the addon in the same trip as
 * the job's cgroups and its spawn, last of the setup ops. EEXIST if the path is taken (ids are fresh
 * UUIDs). A spawn that fails after it leaves the directory to ScratchDirs.release().
 */
export function scratchDirOp(dir: string, owner: ScratchOwner): FsOp {
  return { op: 'mkdir-private', path: dir, uid: owner.uid, gid: owner.gid };
}

export class ScratchDirs {
  readonly root: string;
  readonly keep: boolean;

  constructor(root: string, options: { keep: boolean }) {
    if (!path.isAbsolute(root)) throw new JobworkerError('invalid-argument', `scratch root ${JSON.stringify(root)}: must be an absolute path`);
    this.root = path.resolve(root);
    this.keep = options.keep;
  }

  /** Creates the root (0711) if needed and refuses one that others could tamper with. */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o711 }).catch((error: unknown) => {
      throw systemError('cannot create the scratch root', this.root, error);
    });
    const st = await lstat(this.root);
    if (!st.isDirectory()) throw new JobworkerError('failed-precondition', `scratch root ${this.root}: not a directory (a symlink is refused)`);
    if (st.uid !== process.getuid!()) {
      throw new JobworkerError('failed-precondition', `scratch root ${this.root}: owned by uid ${st.uid}, not by this process (uid ${process.getuid!()}); chown it or choose another`);
    }
    if ((st.mode & 0o022) !== 0) {
      throw new JobworkerError('failed-precondition', `scratch root ${this.root}: mode ${(st.mode & 0o7777).toString(8)} lets others write it; chmod 711 it`);
    }
    if ((st.mode & 0o777) !== 0o711) await chmod(this.root, 0o711);
  }

  pathOf(jobId: string): string {
    return path.join(this.root, jobId);
  }

  /**
   * Removes a finished job's directory (or, with `keep`, hands it to root). True when nothing the
   * job owned is left reachable; false (and the reason in `problem`) otherwise.
   */
  async release(dir: string, owner: ScratchOwner): Promise<{ done: boolean; problem?: string }> {
    if (this.keep) {
      try {
        await chown(dir, 0, 0);
        await chmod(dir, 0o700);
        return { done: true };
      } catch (error) {
        if (errorCode(error) === 'ENOENT') return { done: true };
        return { done: false, problem: `cannot hand ${dir} to root: ${errorCode(error) ?? String(error)}` };
      }
    }
    const fast = await rmdir(dir).then(() => null, (error: unknown) => errorCode(error) ?? String(error));
    if (fast === null || fast === 'ENOENT') return { done: true };
    if (fast !== 'ENOTEMPTY' && fast !== 'EEXIST') return { done: false, problem: `rmdir ${dir}: ${fast}` };
    // The job may have taken its own permissions away (chmod 000 on a subdirectory): give them back.
    await runAs(owner, 'chmod', ['-R', 'u+rwX', '--', dir]);
    await runAs(owner, 'rm', ['-rf', '--one-file-system', '--', dir]);
    const last = await rmdir(dir).then(() => null, (error: unknown) => errorCode(error) ?? String(error));
    if (last === null || last === 'ENOENT') return { done: true };
    return { done: false, problem: `${dir} could not be emptied as uid ${owner.uid} (${last})` };
  }

  /** Removes the root if nothing is left in it (a directory left in it, or none at all: nothing to do). */
  async removeIfEmpty(): Promise<void> {
    await rmdir(this.root).catch(() => undefined);
  }

  /**
   * Removes directories no live job has (left by a crash or a failed removal), as their owner.
   * Returns the ones removed and the ones that could not be.
   */
  async sweep(live: ReadonlySet<string>): Promise<{ removed: string[]; failed: string[] }> {
    const removed: string[] = [];
    const failed: string[] = [];
    for (const name of await readdir(this.root).catch(() => [])) {
      if (live.has(name)) continue;
      const dir = path.join(this.root, name);
      const st = await lstat(dir).catch(() => null);
      if (st === null) continue;
      if (!st.isDirectory()) {
        failed.push(dir);
        continue;
      }
      if (this.keep && st.uid === 0) continue; // kept on purpose, already root's
      const outcome = await this.release(dir, { uid: st.uid, gid: st.gid });
      (outcome.done ? removed : failed).push(dir);
    }
    return { removed, failed };
  }
}
