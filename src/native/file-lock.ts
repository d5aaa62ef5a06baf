// An exclusive lock on a file or directory held through an open fd (flock(2)): the kernel drops it
// when the fd is closed or the process dies, so no stale lock is ever left behind. Node has no flock;
// the addon does the one call.
import { closeSync, constants, fstatSync, openSync, statSync } from 'node:fs';

import { systemError } from '../errors';
import { binding } from './binding';

export interface HeldLock {
  readonly path: string;
  /** Closes the fd: the lock is gone. Idempotent. */
  release(): void;
}

/**
 * Locks `path` (a directory, or any file), or returns undefined if another open file holds a lock on
 * it. The lock is checked to be on what `path` names now, not on a file removed and made again
 * meanwhile (then it is taken again on the new one).
 */
export function tryLockPath(path: string): HeldLock | undefined {
  for (;;) {
    let fd: number; // libuv opens every fd close-on-exec: no job inherits the lock
    try {
      fd = openSync(path, constants.O_RDONLY);
    } catch (error) {
      throw systemError('open for locking', path, error);
    }
    let locked: boolean;
    try {
      locked = binding.tryLockExclusive(fd);
    } catch (error) {
      closeSync(fd);
      throw systemError('lock', path, error);
    }
    if (!locked) {
      closeSync(fd);
      return undefined;
    }
    const held = fstatSync(fd);
    let now: { ino: number; dev: number } | undefined;
    try {
      now = statSync(path);
    } catch {
      now = undefined;
    }
    if (now !== undefined && now.ino === held.ino && now.dev === held.dev) {
      let open = true;
      return {
        path,
        release() {
          if (open) closeSync(fd);
          open = false;
        },
      };
    }
    closeSync(fd); // removed (and perhaps made again) between open and flock: lock what is there now
    if (now === undefined) throw systemError('lock', path, Object.assign(new Error('removed while locking'), { code: 'ENOENT' }));
  }
}
