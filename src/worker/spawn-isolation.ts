// A job's isolation as the addon's spawn takes it (SpawnOptions of src/native).
// Until the addon's namespace support lands (branch iso-native), nothing is passed: jobs run in
// the host's namespaces whatever their record says. The Worker's tests that check isolation by its
// effect skip until then.
import type { SpawnOptions } from '../native';
import type { JobIsolation } from './isolation';

export interface IsolationPaths {
  /** Paths the job must not see. */
  hiddenPaths: readonly string[];
  /** The job's scratch directory: the one place on the host's disk it may write. */
  scratchDir: string | null;
}

export function isolationSpawnOptions(isolation: JobIsolation, paths: IsolationPaths): Partial<SpawnOptions> {
  void isolation;
  void paths;
  return {};
}

/** Whether the addon applies isolation (namespaces, mounts) at all. */
export const ADDON_ISOLATES = false;
