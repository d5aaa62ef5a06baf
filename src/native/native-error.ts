// The native core's one error shape, as its C++ side makes it (native/native_error.h): what was being
// done (`stage`), the errno name (`code`), and where (`path`, `index`).
import { JobworkerError, type ErrorKind } from '../errors';
import { isBindingError, type NativeStage } from './binding';

export type { NativeStage } from './binding';

export interface NativeErrorFields {
  stage: NativeStage;
  /** errno name, e.g. "ENOENT". */
  code: string;
  errno?: number;
  path?: string;
  index?: number;
}

/** A failed step of the native core: a spawn, a filesystem op, a signal. */
export class NativeError extends JobworkerError {
  readonly stage: NativeStage;
  readonly code: string;
  readonly errno: number | undefined;
  /** The file or directory concerned (the exec candidate, the working directory, the op's path…). */
  readonly path: string | undefined;
  /** Stages setup, fs-ops and exit-ops: which op of the list failed; exec: which candidate is reported. */
  readonly index: number | undefined;

  constructor(message: string, fields: NativeErrorFields, options?: { cause?: unknown }) {
    super(nativeErrorKind(fields.stage, fields.code), message, options);
    this.stage = fields.stage;
    this.code = fields.code;
    this.errno = fields.errno;
    this.path = fields.path;
    this.index = fields.index;
  }
}

/** The process never ran: `stage` says which step of the spawn failed. */
export class SpawnError extends NativeError {}

// The request's fault (no such program, bad cwd) is an invalid argument; a busy host (or a full
// disk under the state directory: the log file cannot be created) is exhaustion; a read-only one is
// unavailability.
function nativeErrorKind(stage: NativeStage, code: string): ErrorKind {
  if (stage === 'exec' || stage === 'chdir' || stage === 'credentials') return 'invalid-argument';
  // A path of the request (a bind's source or target, a directory to hide or keep writable).
  // EINVAL: a directory bound onto a file or a file onto a directory.
  if (stage === 'mount' && ['ENOENT', 'ENOTDIR', 'EACCES', 'ELOOP', 'ENAMETOOLONG', 'EINVAL'].includes(code)) return 'invalid-argument';
  if (code === 'EAGAIN' || code === 'ENOMEM' || code === 'EMFILE' || code === 'ENFILE') return 'resource-exhausted';
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'resource-exhausted';
  // The state directory's filesystem was made read-only: the daemon serves reads, not starts.
  if (code === 'EROFS') return 'unavailable';
  return 'internal';
}

/** An error the addon threw or reported, as `Class`; any other value as it is. */
export function fromBinding(error: unknown, Class: typeof NativeError = NativeError): unknown {
  return isBindingError(error) ? new Class(error.message, error, { cause: error }) : error;
}
