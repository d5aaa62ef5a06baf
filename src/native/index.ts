import { binding } from './binding';
import type { NativeCgroupOp } from './process';

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
  type NativeCgroupOp,
  type SpawnOptions,
  type SpawnStage,
} from './process';

/**
 * Runs cgroupfs ops (mkdir, rmdir, single-write writes, whole-file reads) in order on a libuv
 * threadpool thread, off the JS thread, and stops at the first failure: `completed` ops were done,
 * `error` (errno name in `code`) says why the next one failed; `reads[i]` is what op i read.
 */
export async function cgroupOps(
  ops: readonly NativeCgroupOp[],
): Promise<{ completed: number; reads: (string | null)[]; error?: Error }> {
  const result = await binding.cgroupOps(ops as NativeCgroupOp[]);
  if (result.code === undefined) return { completed: result.completed, reads: result.reads };
  const op = ops[result.completed]!;
  const error = Object.assign(new Error(`${result.code}: ${result.message ?? 'failed'}, ${op.op} '${op.path}'`), {
    code: result.code,
    errno: result.errno,
    syscall: op.op,
    path: op.path,
  });
  return { completed: result.completed, reads: result.reads, error };
}

/** Gives the C allocator's free memory back to the kernel (glibc malloc_trim); true if any was. */
export function trimNativeHeap(): boolean {
  return binding.trimNativeHeap();
}
