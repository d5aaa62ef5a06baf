// A command that could not be executed, told as a shell tells it: not found (sh's exit 127) or
// found but not executable (126). The reason names the command and where it was looked for, and
// starts with a stable phrase that clients may test ("command: not found: …", "command: not
// executable: …"; docs/api.md).
import { existsSync } from 'node:fs';

import { ValidationError } from '../errors';
import type { SpawnError } from '../native';

export type CommandProblem = 'not-found' | 'not-executable';

/** Errnos of exec(2) that mean "no such file" rather than "there, but it cannot be run". */
const MISSING = new Set(['ENOENT', 'ENOTDIR']);

const WHY: Record<string, string> = {
  EACCES: 'EACCES: permission denied; it needs the execute bit, on a filesystem not mounted noexec',
  ENOEXEC: 'ENOEXEC: not a format the kernel runs; a script needs a #! line',
  ETXTBSY: 'ETXTBSY: the file is open for writing',
  EISDIR: 'EISDIR: a directory',
  ELOOP: 'ELOOP: too many symbolic links',
};

export class CommandError extends ValidationError {
  constructor(
    readonly problem: CommandProblem,
    reason: string,
    /** The errno exec(2) failed with. */
    readonly code: string,
    /** The PATH searched (null when the command names a path). */
    readonly searchedPath: string | null,
    options: { cause?: unknown } = {},
  ) {
    super('command', reason, options);
  }
}

/** The spawn's exec failure as a CommandError. `pathVariable` is the job's PATH. */
export function commandError(command: string, pathVariable: string, error: SpawnError): CommandError {
  const searched = command.includes('/') ? null : pathVariable;
  const candidate = error.path ?? command;
  if (MISSING.has(error.code)) {
    // A script whose #! interpreter is missing fails with ENOENT too, though the file is there.
    if (searched === null && existsSync(candidate)) {
      return new CommandError('not-executable', `not executable: ${candidate} (its #! interpreter does not exist)`, error.code, null, { cause: error });
    }
    const where = searched === null ? `${candidate} (${error.code})` : `${JSON.stringify(command)} is in none of the PATH directories ${searched}`;
    return new CommandError('not-found', `not found: ${where}`, error.code, searched, { cause: error });
  }
  const found = searched === null ? candidate : `${candidate} (found in PATH ${searched})`;
  return new CommandError('not-executable', `not executable: ${found}: ${WHY[error.code] ?? error.code}`, error.code, searched, { cause: error });
}
