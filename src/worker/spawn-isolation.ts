// A job's isolation as the addon's spawn takes it (SpawnOptions.isolation, src/native/isolation.ts).
import type { Isolation, SpawnOptions } from '../native';
import type { JobIsolation } from './isolation';

export interface IsolationPaths {
  /** Directories no job may see: made empty and unreadable in its mount namespace. */
  hiddenPaths: readonly string[];
  /** The job's scratch directory: kept reachable (and writable) inside a hidden scratch root. */
  scratchDir: string | null;
}

/**
 * Always given, even with every namespace off: it also means no_new_privs and, for a uid other
 * than 0, no capabilities. With a mount namespace the job always gets a private /tmp, /var/tmp and
 * /dev/shm (so it leaves nothing there and sees no one else's), and the hidden paths: the state
 * directory, the config's and TLS files' directories and the scratch root. Its own scratch
 * directory is `writable`, which the addon takes before hiding: it stays at its place (the
 * directories leading to it are empty and unlistable), other jobs' scratch directories are gone.
 */
export function isolationOf(isolation: JobIsolation, paths: IsolationPaths, options: { dynamicUid?: boolean } = {}): Isolation {
  const { pid, mount, ipc, uts, cgroup } = isolation.namespaces;
  const out: Isolation = { pid, mount, ipc, uts, cgroup, network: isolation.network };
  // A dynamic uid may have been another identity's job's: the kernel kept that job's keyrings.
  if (options.dynamicUid === true) out.freshUserKeyrings = true;
  if (!mount) return out;
  out.privateTmp = true;
  out.readOnlyRoot = isolation.readOnlyRoot;
  if (paths.hiddenPaths.length > 0) out.hide = paths.hiddenPaths;
  if (isolation.mounts.length > 0) out.binds = isolation.mounts;
  if (paths.scratchDir !== null) out.writable = [paths.scratchDir];
  return out;
}

export function isolationSpawnOptions(isolation: JobIsolation, paths: IsolationPaths, options: { dynamicUid?: boolean } = {}): Pick<SpawnOptions, 'isolation'> {
  return { isolation: isolationOf(isolation, paths, options) };
}
