// Whether the state directory can be trusted. Whoever can write it (or rename it, or any directory
// above it) can plant links the daemon would write through as root, records it would believe and
// logs it would serve: so it is created 0700, and an existing one must belong to the daemon's user
// and be writable by nobody else. Every directory on the way to it must belong to root or the
// daemon's user and be writable by no one else, unless it is sticky like /tmp (then others cannot
// rename or remove what is not theirs). A refusal names the path, what was found and the fix.
import { lstat, mkdir, realpath } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import * as path from 'node:path';

import { JobworkerError, systemError } from '../errors';

const STICKY = 0o1000;
const GROUP_OR_OTHER_WRITE = 0o022;

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

function distrust(message: string): JobworkerError {
  return new JobworkerError('failed-precondition', message);
}

function ownUid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * One of the daemon's own directories (the state directory, its logs/): a real directory (not a
 * link), owned by the daemon's user, not writable by group or others.
 */
function checkOwnDirectory(dir: string, stats: Stats, what: string): void {
  const uid = ownUid();
  if (stats.isSymbolicLink()) {
    throw distrust(`${what} ${dir} is a symbolic link; jobworker does not follow links in its state directory. Fix: replace it with a directory (mkdir -m 0700), or give the link's target as the state directory`);
  }
  if (!stats.isDirectory()) throw distrust(`${what} ${dir} is not a directory. Fix: move it away, or choose another state directory`);
  if (stats.uid !== uid || (stats.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    throw distrust(
      `${what} ${dir} is owned by uid ${stats.uid} with mode ${octal(stats.mode)}; it must be owned by uid ${uid} (the user jobworker runs as) ` +
        `and not writable by group or others, or whoever can write it can plant links and records the daemon would trust. ` +
        `Fix: chown ${uid} ${dir} && chmod 0700 ${dir}, or choose another state directory`,
    );
  }
}

/** A directory above the state directory: root's or ours, and writable by no one else unless sticky. */
function checkAncestor(dir: string, stats: Stats, stateDir: string): void {
  const uid = ownUid();
  const writableByOthers = (stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && (stats.mode & STICKY) === 0;
  if ((stats.uid !== 0 && stats.uid !== uid) || writableByOthers) {
    throw distrust(
      `state directory ${stateDir}: the directory ${dir} above it is owned by uid ${stats.uid} with mode ${octal(stats.mode)}; ` +
        `it must be owned by root or uid ${uid} and not writable by group or others (unless sticky, like /tmp), ` +
        `or whoever can write it can replace the state directory. Fix: chown root ${dir} && chmod go-w ${dir}, or choose another state directory`,
    );
  }
}

/** Every directory crossed to reach `dir` (each prefix resolved, with its own ancestors), root first. */
async function directoriesCrossed(dir: string): Promise<string[]> {
  const crossed = new Set<string>();
  let prefix = path.parse(dir).root;
  for (const part of dir.split(path.sep).filter((p) => p !== '')) {
    prefix = path.join(prefix, part);
    let resolved = await realpath(prefix);
    for (;;) {
      crossed.add(resolved);
      const parent = path.dirname(resolved);
      if (parent === resolved) break;
      resolved = parent;
    }
  }
  crossed.add(path.parse(dir).root);
  return [...crossed].sort((a, b) => a.length - b.length);
}

/**
 * Creates the state directory and logs/ (0700, missing parents too) or checks existing ones.
 * Returns the state directory's absolute path. Throws `failed-precondition` naming what to fix.
 */
export async function prepareStateDir(stateDir: string, logsDirName: string): Promise<string> {
  const dir = path.resolve(stateDir);
  const logsDir = path.join(dir, logsDirName);
  // 0700, parents it creates included: records and spec files hold the jobs' environments.
  await makeDirectory(dir, dir);
  await check(dir, async () => {
    const real = await realpath(dir);
    for (const crossed of await directoriesCrossed(dir)) {
      if (crossed === real) continue;
      checkAncestor(crossed, await lstat(crossed), dir);
    }
    checkOwnDirectory(real, await lstat(real), 'state directory');
  });
  // Only in a directory found trustworthy: a refusal leaves nothing behind.
  await makeDirectory(logsDir, dir);
  await check(dir, async () => checkOwnDirectory(logsDir, await lstat(logsDir), 'logs directory'));
  return dir;
}

async function makeDirectory(dir: string, stateDir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw systemError('create state directory', stateDir === dir ? dir : `${stateDir} (${dir})`, error);
  }
}

async function check(stateDir: string, checks: () => Promise<void>): Promise<void> {
  try {
    await checks();
  } catch (error) {
    if (error instanceof JobworkerError) throw error;
    throw systemError('check state directory', stateDir, error);
  }
}
