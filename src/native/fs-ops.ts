// Filesystem ops run by the addon off the JS thread: a batch of its own (fsOps()), or a spawn's
// setupOps and exitOps. How the Worker creates, reads and removes a job's cgroups in one trip each.
import { JobworkerError } from '../errors';
import { binding, type BindingFsOpsResult } from './binding';
import { NativeError } from './native-error';

/** One step; `optional`: ENOENT skips it (a file this kernel lacks, a directory already gone). */
export type FsOp =
  | { op: 'mkdir' | 'rmdir' | 'read'; path: string; optional?: boolean }
  /** Written with a single write(2): the kernel parses each write of a control file on its own. */
  | { op: 'write'; path: string; value: string; optional?: boolean }
  /** A new empty file (O_CREAT | O_EXCL, mode 0640): EEXIST if the path is taken. */
  | { op: 'create'; path: string; optional?: boolean }
  /**
   * A new directory only `uid`:`gid` may use: made 0700 (EEXIST if the path is taken), then given
   * to them; removed again if that fails. As a spawn's setup op it is undone like a mkdir.
   */
  | { op: 'mkdir-private'; path: string; uid: number; gid: number; optional?: boolean };

/** What a list of FsOps did: `completed` done, then `error` (if set) stopped the next one. */
export interface FsOpsResult {
  completed: number;
  /** Per op: what a read returned; null for other ops, skipped optional reads and ops not run. */
  reads: (string | null)[];
  /** Why op `completed` failed: `code` the errno name, `path` the op's path, `index` = `completed`. */
  error?: NativeError;
}

/**
 * Runs `ops` in order on a libuv threadpool thread and stops at the first failure, which is
 * reported in the result (stage "fs-ops"), not thrown: the caller needs `completed` to undo.
 */
export async function fsOps(ops: readonly FsOp[]): Promise<FsOpsResult> {
  return toFsOpsResult(await binding.fsOps(encodeFsOps(ops)));
}

const OP_LETTERS = { mkdir: 'k', rmdir: 'd', write: 'w', read: 'r', create: 'c', 'mkdir-private': 'p' } as const;

/**
 * The ops as the addon takes them: one string, so that passing 30 ops costs one conversion. Per op:
 * its letter, '?' if optional or '!' if not, the path, NUL, the value (a write's bytes, a private
 * directory's "uid:gid", empty otherwise), NUL (parsed by parse_fs_ops in native/addon.cc).
 */
export function encodeFsOps(ops: readonly FsOp[]): string {
  let text = '';
  for (const op of ops) {
    if (op.path.includes('\0') || (op.op === 'write' && op.value.includes('\0'))) {
      throw new JobworkerError('invalid-argument', `fs op ${op.op} ${JSON.stringify(op.path)}: NUL byte`);
    }
    text += `${OP_LETTERS[op.op]}${op.optional === true ? '?' : '!'}${op.path}\0${opValue(op)}\0`;
  }
  return text;
}

function opValue(op: FsOp): string {
  if (op.op === 'write') return op.value;
  if (op.op !== 'mkdir-private') return '';
  for (const id of [op.uid, op.gid]) {
    if (!Number.isInteger(id) || id < 0 || id >= 0xffffffff) {
      throw new JobworkerError('invalid-argument', `fs op mkdir-private ${JSON.stringify(op.path)}: owner ${op.uid}:${op.gid} is not a uid:gid`);
    }
  }
  return `${op.uid}:${op.gid}`;
}

export function toFsOpsResult(result: BindingFsOpsResult): FsOpsResult {
  const out: FsOpsResult = { completed: result.completed, reads: result.reads };
  if (result.error !== undefined) out.error = new NativeError(result.error.message, result.error, { cause: result.error });
  return out;
}
