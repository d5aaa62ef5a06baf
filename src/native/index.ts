// The typed face of the native core (native/): spawning, capture, exit, filesystem ops.
import { closeSync } from 'node:fs';
import { constants } from 'node:os';

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

/**
 * Reads what the page cache already holds of [position, position + length) into `buffer` at
 * `offset`, on the calling thread without ever waiting for the disk (preadv2 RWF_NOWAIT). Returns
 * the bytes read (0 at the end of the file; possibly fewer than asked for: the rest is not cached),
 * or null when the first of them are not cached or the kernel cannot tell: then read them the
 * usual way. For data written moments ago (a followed log) this costs a fifth of an async read.
 */
export function readCached(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number | null {
  const read = binding.readCached(fd, buffer, offset, length, position);
  return read < 0 ? null : read;
}

/** Gives the C allocator's free memory back to the kernel (glibc malloc_trim); true if any was. */
/** A pidfd for `pid` (close it with fs.closeSync), or null if no process has that pid now. */
export function pidfdOpen(pid: number): number | null {
  const fd = binding.pidfdOpen(pid);
  return fd < 0 ? null : fd;
}

/** Sends `signal` to the process `pidfd` names; false if it has exited. */
export function pidfdSendSignal(pidfd: number, signal: NodeJS.Signals): boolean {
  return binding.pidfdSendSignal(pidfd, constants.signals[signal]);
}

/** The cgroup layer's PinnedSignaller, by pidfds. */
export const PIDFD_SIGNALLER = {
  pin: pidfdOpen,
  send: pidfdSendSignal,
  release: (pidfd: number): void => closeSync(pidfd),
};

export function trimNativeHeap(): boolean {
  return binding.trimNativeHeap();
}
