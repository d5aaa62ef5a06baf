import { binding } from './binding';

export { execCandidates, DEFAULT_PATH } from './exec-path';
export {
  NativeProcess,
  SpawnError,
  signalName,
  signalNumber,
  spawnProcess,
  spawnProcessAsync,
  type CloseInfo,
  type ExitInfo,
  type SpawnOptions,
  type SpawnStage,
} from './process';

/** Gives the C allocator's free memory back to the kernel (glibc malloc_trim); true if any was. */
export function trimNativeHeap(): boolean {
  return binding.trimNativeHeap();
}
