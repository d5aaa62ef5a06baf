// A job's isolation as the addon's spawn takes it (SpawnOptions.isolation, src/native/isolation.ts).
import type { Isolation, SpawnOptions } from '../native';
import type { JobIsolation } from './isolation';

export interface IsolationPaths {
  /** Directories no job may see: made empty and unreadable in its mount namespace. */
  hiddenPaths: readonly string[];
  /** The job's scratch directory: kept writable under a read-only root. */
  scratchDir: string | null;
}

/**
 * Whether this build of the addon applies isolation. Until it does (branch iso-native), nothing
 * is passed and jobs run in the host's namespaces whatever their record says; the tests that
 * check isolation by its effect skip.
 */
export const ADDON_ISOLATES = false;

/**
 * Always given (when the addon isolates), even with every namespace off: it also means
 * no_new_privs and, for a uid other than 0, no capabilities. With a mount namespace the job always
 * gets a private /tmp, /var/tmp and /dev/shm (so it leaves nothing there and sees no one else's),
 * and the hidden paths. The scratch root is not hidden (a hidden directory's contents cannot be
 * shown again): each scratch directory is 0700 and its job's, under a root-owned 0711 root.
 */
export function isolationOf(isolation: JobIsolation, paths: IsolationPaths): Isolation {
  const { pid, mount, ipc, uts, cgroup } = isolation.namespaces;
  const out: Isolation = { pid, mount, ipc, uts, cgroup, network: isolation.network };
  if (!mount) return out;
  out.privateTmp = true;
  out.readOnlyRoot = isolation.readOnlyRoot;
  if (paths.hiddenPaths.length > 0) out.hide = paths.hiddenPaths;
  if (isolation.mounts.length > 0) out.binds = isolation.mounts;
  if (isolation.readOnlyRoot && paths.scratchDir !== null) out.writable = [paths.scratchDir];
  return out;
}

export function isolationSpawnOptions(isolation: JobIsolation, paths: IsolationPaths): Pick<SpawnOptions, 'isolation'> {
  return ADDON_ISOLATES ? { isolation: isolationOf(isolation, paths) } : {};
}
