// One worker per state directory: a second one would mark the first one's running jobs as lost and
// kill them. The lock file holds the owner's pid; a lock whose process is gone is stale and taken over.
// It is created O_EXCL (never through a link) and read O_NOFOLLOW: a link in its place is stale.
import { existsSync } from 'node:fs';
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import * as path from 'node:path';

import { JobworkerError, errorCode, systemError } from '../errors';

export class StateLock {
  private constructor(readonly path: string) {}

  static async acquire(stateDir: string): Promise<StateLock> {
    const lockPath = path.join(stateDir, 'worker.lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const file = await open(lockPath, 'wx', 0o600);
        await file.writeFile(`${process.pid}\n`);
        await file.close();
        return new StateLock(lockPath);
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw systemError('create lock file', lockPath, error);
      }
      const holder = Number((await readHolder(lockPath)).trim());
      if (Number.isInteger(holder) && holder > 0 && existsSync(`/proc/${holder}`)) {
        throw new JobworkerError(
          'failed-precondition',
          `state directory ${stateDir} is in use by process ${holder} (if that is not a jobworker, remove ${lockPath})`,
        );
      }
      await rm(lockPath, { force: true }); // stale: its process is gone
    }
    throw new JobworkerError('failed-precondition', `could not lock state directory ${stateDir}`);
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}

/** The lock file's content; '' if it cannot be read or is a link. */
async function readHolder(lockPath: string): Promise<string> {
  try {
    const file = await open(lockPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return (await file.readFile({ encoding: 'utf8' })).slice(0, 64);
    } finally {
      await file.close();
    }
  } catch {
    return '';
  }
}
