// Looking at a path a request names, as root, without telling the client more than any user of the
// host could learn, and without touching anything the client could have made: a FIFO (whose open
// waits for a writer), a device (whose open has effects), or a link swapped in while we look.
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';

/**
 * Whether every user may look `target` up: each directory on the way to it, as named and after its
 * symbolic links are resolved, is searchable by others (ACLs aside). A missing target (or
 * directory) is judged by the nearest directory that exists: that it is missing is then no secret.
 */
export async function everyoneCanReach(target: string): Promise<boolean> {
  const directories = new Set([path.dirname(path.resolve(target))]);
  try {
    directories.add(path.dirname(await fsp.realpath(target)));
  } catch {
    // missing (or a dangling link): the directory it would be in decides
  }
  for (const directory of directories) {
    for (let dir = directory; ; dir = path.dirname(dir)) {
      try {
        if ((Number((await fsp.stat(dir)).mode) & 0o001) === 0) return false;
      } catch (error) {
        // A missing directory is as public as the one it would be in: look there.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      }
      if (dir === path.dirname(dir)) break;
    }
  }
  return true;
}

/** Whether `target` exists ('private' unless every user may look it up). */
export async function lookUp(target: string): Promise<'exists' | 'missing' | 'private'> {
  if (!(await everyoneCanReach(target))) return 'private';
  return (await fsp.lstat(target).then(() => true, () => false)) ? 'exists' : 'missing';
}

/** Whether `target` exists, told only if every user may look it up (else false). */
export async function existsForEveryone(target: string): Promise<boolean> {
  return (await lookUp(target)) === 'exists';
}

/**
 * The first `bytes` bytes of `target`, read only if it is a regular file every user may read and
 * that only root can change: its resolved path's every directory and the file itself root's and
 * writable by no one else (so no one can swap in a FIFO, a device or a link meanwhile). Else null.
 */
export async function readHeadIfRootControlled(target: string, bytes: number): Promise<Buffer | null> {
  let resolved: string;
  try {
    resolved = await fsp.realpath(target);
  } catch {
    return null;
  }
  for (let dir = path.dirname(resolved); ; dir = path.dirname(dir)) {
    const stat = await fsp.lstat(dir).catch(() => null);
    if (stat === null || !stat.isDirectory() || stat.uid !== 0 || (Number(stat.mode) & 0o022) !== 0) return null;
    if (dir === path.dirname(dir)) break;
  }
  const file = await fsp.lstat(resolved).catch(() => null);
  if (file === null || !file.isFile() || file.uid !== 0 || (Number(file.mode) & 0o022) !== 0 || (Number(file.mode) & 0o004) === 0) return null;
  // O_NOFOLLOW | O_NONBLOCK: should it change after all, a link or a FIFO is refused, not followed or waited on.
  const handle = await fsp.open(resolved, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
  if (handle === null) return null;
  try {
    const head = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(head, 0, bytes, 0);
    return head.subarray(0, bytesRead);
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}
