// A command that could not be executed, told as a shell tells it: not found (sh's exit 127) or
// found but not executable (126). The reason names the command and where it was looked for, and
// starts with a stable phrase that clients may test ("command: not found: …", "command: not
// executable: …"; docs/api.md).

import { promises as fsp } from 'node:fs';

import { describeBytes } from '../byte-size';
import { ValidationError } from '../errors';
import { everyoneCanReach, existsForEveryone, lookUp, readHeadIfRootControlled } from '../request-paths';
import { execCandidates, type SpawnError } from '../native';

export type CommandProblem = 'not-found' | 'not-executable';

/** Errnos of exec(2) that mean "no such file" rather than "there, but it cannot be run". */
const MISSING = new Set(['ENOENT', 'ENOTDIR']);

const WHY: Record<string, string> = {
  EACCES: 'EACCES: permission denied; it needs the execute bit, on a filesystem not mounted noexec, and every directory on the way must be searchable by the job\'s user',
  ENOEXEC: 'ENOEXEC: not a format the kernel runs; a script needs a #! line',
  ETXTBSY: 'ETXTBSY: the file is open for writing',
  EISDIR: 'EISDIR: a directory',
  ELOOP: 'ELOOP: too many symbolic links, or #! interpreters nested deeper than the kernel follows',
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

/**
 * The spawn's exec failure as a CommandError. `pathVariable` is the job's PATH. The paths it looks
 * at are the request's: whether one exists on the host is said only of a path every user may look
 * up, and a script's #! line is read only from a file only root can change (request-paths.ts).
 */
export async function commandError(command: string, pathVariable: string, error: SpawnError): Promise<CommandError> {
  const searched = command.includes('/') ? null : pathVariable;
  if (MISSING.has(error.code)) {
    // The exec said "no such file" of every candidate. One there on the host anyway is either out of
    // the job's view (its /tmp is its own; the daemon's directories are hidden) or a script whose
    // #! interpreter is missing, which fails with ENOENT too.
    const found = await firstOnHost(searched === null ? [command] : execCandidates(command, searched).slice(0, HOST_CANDIDATES_LOOKED_AT));
    const at = (file: string) => (searched === null ? file : `${file} (found in PATH ${quotedSearchPath(searched)})`);
    if (found !== null) {
      const interpreter = await shebangInterpreter(found);
      if (interpreter !== null && (await lookUp(interpreter)) === 'missing') {
        return new CommandError('not-executable', `not executable: ${at(found)} (its #! interpreter does not exist)`, error.code, searched, { cause: error });
      }
      const why = `${at(found)} (${error.code}): it exists on the daemon's host but not in the job's view, or it is a script whose #! interpreter is not there (each job has a private /tmp, /var/tmp and /dev/shm; the daemon's directories are hidden)`;
      return new CommandError('not-found', `not found: ${why}`, error.code, searched, { cause: error });
    }
    const where = searched === null ? `${error.path ?? command} (${error.code})` : `${JSON.stringify(command)} is in none of the PATH directories ${quotedSearchPath(searched)}`;
    return new CommandError('not-found', `not found: ${where}`, error.code, searched, { cause: error });
  }
  const candidate = error.path ?? command;
  const found = searched === null ? candidate : `${candidate} (found in PATH ${quotedSearchPath(searched)})`;
  if (error.code === 'EACCES') {
    // A script whose #! interpreter may not be run fails with EACCES too, though the script may.
    const interpreter = await shebangInterpreter(candidate);
    if (interpreter !== null && (await everyoneCanReach(interpreter)) && (await notExecutable(interpreter))) {
      return new CommandError('not-executable', `not executable: ${found}: its #! interpreter ${interpreter} is not executable (EACCES)`, error.code, searched, { cause: error });
    }
  }
  return new CommandError('not-executable', `not executable: ${found}: ${WHY[error.code] ?? error.code}`, error.code, searched, { cause: error });
}

/** How many of a PATH search's candidates are looked for on the host after an ENOENT (each a few stats). */
const HOST_CANDIDATES_LOOKED_AT = 16;

/** The first of `candidates` that exists on the host where every user may look it up. */
async function firstOnHost(candidates: readonly string[]): Promise<string | null> {
  for (const candidate of candidates) if (await existsForEveryone(candidate)) return candidate;
  return null;
}

/** Whether `file` is a regular file without any execute bit (as seen by root). */
async function notExecutable(file: string): Promise<boolean> {
  const stat = await fsp.stat(file).catch(() => null);
  return stat !== null && stat.isFile() && (Number(stat.mode) & 0o111) === 0;
}

/**
 * An exec that ran out of memory, or whose arguments and environment could not be copied. The job's
 * memory limit is in force from before the exec, and the program, its arguments and its environment
 * count against it: a limit too small for them is the request's to change, not a command that
 * "cannot be run". A failed charge while copying the arguments comes back as E2BIG, like arguments
 * over the kernel's ARG_MAX (a quarter of the stack limit); the message names both.
 */
export function execOutOfMemory(command: string, memoryBytes: number | null, error: SpawnError): ValidationError | null {
  if ((error.stage !== 'exec' && error.stage !== 'init') || (error.code !== 'ENOMEM' && error.code !== 'E2BIG')) return null;
  const limit = memoryBytes === null ? null : describeBytes(memoryBytes);
  if (error.stage === 'init') {
    // The job's PID 1 (jobworker-init) is exec'd in the job's cgroup with the command's arguments,
    // environment and PATH candidates (it starts the command).
    if (error.code === 'E2BIG') {
      const memory = limit === null ? '' : `do not fit in limits.memoryBytes, ${limit}, or `;
      return new ValidationError(
        'args',
        `the exec of the job's init (its PID 1, which starts ${command}) could not copy the arguments, the environment and the paths to try for the command (E2BIG): they ${memory}are more than the kernel takes (ARG_MAX, a quarter of the daemon's stack limit); pass less, or name the command by its path`,
        { related: ['env', ...(limit === null ? [] : ['limits.memoryBytes'])], cause: error },
      );
    }
    if (limit === null) return null;
    return new ValidationError(
      'limits.memoryBytes',
      `${limit} is too little to start ${command}: the exec of the job's init (its PID 1) ran out of memory (${error.code}); raise the limit`,
      { cause: error },
    );
  }
  const program = error.path ?? command;
  if (error.code === 'ENOMEM') {
    if (limit === null) return null;
    return new ValidationError(
      'limits.memoryBytes',
      `${limit} is too little to start ${program}: its exec ran out of memory (ENOMEM) loading the program, its arguments and its environment; raise the limit, or pass less`,
      { cause: error },
    );
  }
  const memory = limit === null ? '' : `do not fit in limits.memoryBytes, ${limit}, or `;
  const fix = limit === null ? 'pass less' : 'raise the limit or pass less';
  return new ValidationError(
    'args',
    `the exec of ${program} could not copy its arguments and environment (E2BIG): they ${memory}are more than the kernel takes (ARG_MAX, a quarter of the daemon's stack limit); ${fix}`,
    { related: ['env', ...(limit === null ? [] : ['limits.memoryBytes'])], cause: error },
  );
}

/** A job's PATH in a message: at most 1024 characters of it (a request may send 128 KiB). */
function quotedSearchPath(searched: string): string {
  return searched.length > 1024 ? `${searched.slice(0, 1024)}… (${searched.split(':').length} entries)` : searched;
}

/** The interpreter a script's #! line names, if the file is one only root can change (null otherwise). */
async function shebangInterpreter(file: string): Promise<string | null> {
  const head = await readHeadIfRootControlled(file, 256);
  if (head === null) return null;
  const line = head.toString('latin1').split('\n')[0]!;
  return line.startsWith('#!') ? (line.slice(2).trim().split(/[ \t]/)[0] ?? null) : null;
}
