// Every file of the state directory is opened with O_NOFOLLOW: a symbolic link planted there (by
// whoever could write the directory once, or by a restored backup) is refused, never written,
// truncated or read through, even by a daemon running as root. Files the daemon truncates or
// overwrites in place must also be plain files of its own with one name (a hard link to
// /etc/shadow is refused too). Node has no openat(2), so the directories themselves are trusted
// by ownership and mode, checked at open (./state-dir.ts); these checks cover the last component.
import { closeSync, constants, fstatSync, ftruncateSync, openSync, type Stats } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';

import { JobworkerError, errorCode, systemError } from '../errors';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW } = constants;

export const OPEN_READ = O_RDONLY | O_NOFOLLOW;
export const OPEN_APPEND = O_WRONLY | O_APPEND | O_NOFOLLOW;
/** A new file only: never an existing one, never through a link (O_EXCL does not follow one). */
export const CREATE_NEW = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
export const CREATE_NEW_APPEND = CREATE_NEW | O_APPEND;

/** Why an existing file may not be changed in place; undefined if it may. */
export function notOwnPlainFile(stats: Stats): string | undefined {
  if (!stats.isFile()) return 'not a regular file';
  if (stats.nlink !== 1) return `a file with ${stats.nlink} names (a hard link)`;
  const uid = process.geteuid?.();
  if (uid !== undefined && stats.uid !== uid) return `owned by uid ${stats.uid}, not ${uid}`;
  return undefined;
}

/** A link where a state file should be: the error names it and the fix. */
export function linkRefused(operation: string, path: string, cause: unknown): JobworkerError {
  return new JobworkerError(
    'failed-precondition',
    `${operation} ${path}: it is a symbolic link, which jobworker never follows in its state directory (remove it, after finding out who put it there)`,
    { cause },
  );
}

/** Opens a state file for reading, refusing a link. */
export async function openForReading(path: string, operation: string): Promise<FileHandle> {
  try {
    return await open(path, OPEN_READ);
  } catch (error) {
    if (errorCode(error) === 'ELOOP') throw linkRefused(operation, path, error);
    throw error;
  }
}

/**
 * Cuts a file of ours to `size` bytes through a descriptor opened without following links, after
 * checking it is a plain file of ours. Returns false (and leaves the file alone) if it is not.
 */
export function truncateOwnFileSync(path: string, size: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_NOFOLLOW);
  } catch (error) {
    if (errorCode(error) === 'ELOOP') return false;
    throw error;
  }
  try {
    if (notOwnPlainFile(fstatSync(fd)) !== undefined) return false;
    ftruncateSync(fd, size);
    return true;
  } finally {
    closeSync(fd);
  }
}

/** truncateOwnFileSync, with the truncate (which frees blocks: slow for a big file) on the threadpool. */
export async function truncateOwnFile(path: string, size: number): Promise<boolean> {
  let file: FileHandle;
  try {
    file = await open(path, O_WRONLY | O_NOFOLLOW);
  } catch (error) {
    if (errorCode(error) === 'ELOOP') return false;
    throw error;
  }
  try {
    if (notOwnPlainFile(await file.stat()) !== undefined) return false;
    await file.truncate(size);
    return true;
  } finally {
    await file.close();
  }
}

/**
 * Writes `data` to a new file (any file or link of that name is unlinked first: unlink does not
 * follow links), then fdatasync unless `sync` is false. Mode 0600.
 */
export async function writeNewFile(path: string, data: string | Buffer, operation: string, options: { sync?: boolean; replace?: boolean } = {}): Promise<void> {
  try {
    if (options.replace) await removeIfPresent(path, operation);
    const file = await open(path, CREATE_NEW, 0o600);
    try {
      await file.writeFile(data);
      if (options.sync ?? true) await file.datasync();
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof JobworkerError) throw error;
    throw systemError(operation, path, error);
  }
}

/**
 * fsync of a directory: makes the names created, renamed or removed in it durable. (The state
 * directory may be given as a link to the real one; syncing through it changes nothing else.)
 */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes a file if it is there (a link in its place too: unlink does not follow it). */
export async function removeIfPresent(path: string, operation: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw systemError(operation, path, error);
  }
}

/** fdatasync of each file, `concurrency` at a time (the filesystem merges concurrent syncs). */
export async function syncFiles(paths: readonly string[], concurrency: number, operation: string): Promise<void> {
  let next = 0;
  const syncOne = async (file: string): Promise<void> => {
    try {
      const handle = await open(file, OPEN_READ);
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw systemError(operation, file, error);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, paths.length) }, async () => {
      while (next < paths.length) await syncOne(paths[next++]!);
    }),
  );
}
