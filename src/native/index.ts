import { binding } from './binding';
import { encodeFsOps, toOpsResult, type FsOp, type FsOpsResult } from './process';

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
  type FsOp,
  type FsOpsResult,
  type SpawnOptions,
  type SpawnStage,
} from './process';

/**
 * Runs filesystem ops (mkdir, rmdir, single-write writes, whole-file reads, new empty files) in order on a libuv
 * threadpool thread, off the JS thread, and stops at the first failure: `completed` ops were done,
 * `error` (errno name in `code`) says why the next one failed; `reads[i]` is what op i read.
 */
export async function fsOps(ops: readonly FsOp[]): Promise<FsOpsResult> {
  return toOpsResult(ops, await binding.fsOps(encodeFsOps(ops)));
}

/** Gives the C allocator's free memory back to the kernel (glibc malloc_trim); true if any was. */
export function trimNativeHeap(): boolean {
  return binding.trimNativeHeap();
}
