// The typed face of the native core (native/): spawning, capture, exit, filesystem ops.
import { binding } from './binding';

export { execCandidates, DEFAULT_PATH } from './exec-path';
export { fsOps, type FsOp, type FsOpsResult } from './fs-ops';
export { tryLockPath, type HeldLock } from './file-lock';
export { LogBudget } from './log-budget';
export type { BindMount, Isolation } from './isolation';
export { NativeError, SpawnError, type NativeErrorFields, type NativeStage } from './native-error';
export {
  NativeProcess,
  signalName,
  signalNumber,
  spawnProcess,
  spawnProcessAsync,
  type CloseInfo,
  type ExitInfo,
  type SpawnOptions,
} from './process';

/** Gives the C allocator's free memory back to the kernel (glibc malloc_trim); true if any was. */
export function trimNativeHeap(): boolean {
  return binding.trimNativeHeap();
}
