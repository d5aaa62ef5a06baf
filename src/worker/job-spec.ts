// What a job is asked to be, and the checks at the library's boundary. Every input is bounded.
import * as path from 'node:path';

import type { Limits } from '../cgroup';
import { ValidationError } from '../errors';
import { DEFAULT_JOB_PATH } from '../job-path';
import type { JobIsolationSpec } from './isolation';
import { checkJobName, checkLabels } from './job-labels';

export { DEFAULT_JOB_PATH };

/**
 * Who a job runs as, when not a dynamic uid: a user by number or by name (looked up in the host's
 * user database when the job starts), its primary group and supplementary groups.
 */
export interface JobUserSpec {
  /** The user by number; it need not be in the user database. Give this or `name` (both, with gid and groups: taken as is, no lookup). */
  uid?: number;
  /** The user by name, from the user database. */
  name?: string;
  /** Primary group by number; default: the user's primary group in the database, else the uid's number. */
  gid?: number;
  /** Primary group by name. */
  group?: string;
  /** Supplementary groups (numbers or names); default: the user's groups in the database (as login sets them), none for a uid it does not know. */
  groups?: (number | string)[];
  /** How it was chosen, as the status reports it: 'requested' (the default: someone asked for it) or 'mapped' (the owner's configured user). */
  kind?: 'mapped' | 'requested';
}

/** 'dynamic': a uid of the worker's dynamic range, the job's alone while it lives. */
export type JobUserChoice = JobUserSpec | 'dynamic';

/** Who a job runs as, resolved to numbers, as recorded and reported. */
export interface JobRunAs {
  uid: number;
  gid: number;
  groups: number[];
  /** The user's name in the user database; null when it has none (dynamic uids never do). */
  name: string | null;
  kind: 'dynamic' | 'mapped' | 'requested';
}

export interface JobSpec {
  /** Program: a path, or a name looked up in the job's PATH (never run through a shell). */
  command: string;
  args?: string[];
  /**
   * The job's whole environment (nothing of the daemon's is inherited), plus a default PATH when it
   * has none (DEFAULT_JOB_PATH, what systemd gives services), as docker gives one.
   */
  env?: Record<string, string>;
  /** Absolute working directory, which the job's user must be able to enter; default: a scratch directory of its own. */
  cwd?: string;
  limits?: Limits;
  /** Identity the job belongs to (the gRPC server passes the caller's certificate name). */
  owner?: string;
  /** Who it runs as; default: the worker's `defaults.user` (itself 'dynamic' by default). */
  user?: JobUserChoice;
  /** Namespaces, network, read-only root, binds; absent fields take the worker's defaults. */
  isolation?: JobIsolationSpec;
  /**
   * The longest it may run, in ms from its start (systemd's RuntimeMaxSec=): then it is stopped
   * like Job.stop() with the default grace, and ends `failed` with `timedOut`. Default: no limit.
   */
  maxRuntimeMs?: number;
}

/** What a job is called and tagged with (Worker.start's options). */
export interface JobNaming {
  /** Unique among its owner's jobs until it is removed; usable wherever an id is. */
  name?: string;
  labels?: Record<string, string>;
}

/** A spec with every default applied, as stored in the job's record. */
export interface ResolvedJobSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** null: a scratch directory of its own. */
  cwd: string | null;
  limits: Limits;
  owner: string;
  /** null: the worker's default. */
  user: JobUserChoice | null;
  /** Absent: the worker's defaults. */
  isolation?: JobIsolationSpec | undefined;
  maxRuntimeMs: number | null;
  /** null: none. */
  name: string | null;
  labels: Record<string, string>;
}

export const SPEC_BOUNDS = {
  commandBytes: 4096,
  argCount: 4096,
  /** Linux refuses any single argv/env string longer than this (MAX_ARG_STRLEN). */
  stringBytes: 128 * 1024,
  /** argv + env together: well under the kernel's ARG_MAX with the default 8 MiB stack. */
  totalBytes: 1024 * 1024,
  envCount: 4096,
  envNameBytes: 1024,
  pathBytes: 4096,
  /**
   * A command name is tried in each PATH directory in turn (execvp's rule): the paths that makes,
   * together. PATH is one bounded string, but 128 KiB of empty entries times a 4 KiB command would
   * be half a gigabyte of paths.
   */
  searchPathBytes: 1024 * 1024,
  ownerBytes: 256,
  groups: 64,
  /** setTimeout's longest delay (2^31-1 ms, 24.8 days): a longer one would fire at once. */
  maxRuntimeMs: 2_147_483_647,
} as const;

function bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function checkString(field: string, value: unknown, maxBytes: number, allowEmpty = true): string {
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a string');
  if (!allowEmpty && value.length === 0) throw new ValidationError(field, 'must not be empty');
  if (value.includes('\0')) throw new ValidationError(field, 'must not contain NUL bytes');
  if (bytes(value) > maxBytes) throw new ValidationError(field, `is longer than ${maxBytes} bytes`);
  return value;
}

function checkId(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xfffffffe) {
    throw new ValidationError(field, 'must be an integer from 0 to 4294967294');
  }
  return value;
}

const NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.@+-]{0,255}\$?$/;

function checkName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) throw new ValidationError(field, 'must be a user or group name (letters, digits, "._@+-", not starting with "-")');
  return value;
}

/** Checks a user choice's shape (`field` names it in errors); names are looked up when the job starts. */
export function checkJobUser(field: string, user: JobUserChoice): JobUserChoice {
  if (user === 'dynamic') return user;
  if (typeof user !== 'object' || user === null) throw new ValidationError(field, 'must be "dynamic" or an object with uid or name');
  if (user.uid === undefined && user.name === undefined) throw new ValidationError(field, 'give uid or name');
  // Both: a user resolved already (the daemon's mapped users, looked up at config load): taken as is.
  if (user.uid !== undefined && user.name !== undefined && (user.gid === undefined || user.groups === undefined)) {
    throw new ValidationError(field, 'give uid or name (both only with gid and groups: a user resolved already)');
  }
  if (user.gid !== undefined && user.group !== undefined) throw new ValidationError(field, 'give at most one of gid and group');
  const groups = user.groups ?? [];
  if (!Array.isArray(groups) || groups.length > SPEC_BOUNDS.groups) {
    throw new ValidationError(`${field}.groups`, `must be an array of at most ${SPEC_BOUNDS.groups} groups`);
  }
  if (user.kind !== undefined && user.kind !== 'mapped' && user.kind !== 'requested') throw new ValidationError(`${field}.kind`, 'must be "mapped" or "requested"');
  const out: JobUserSpec = { kind: user.kind ?? 'requested' };
  if (user.uid !== undefined) out.uid = checkId(`${field}.uid`, user.uid);
  if (user.name !== undefined) out.name = checkName(`${field}.name`, user.name);
  if (user.gid !== undefined) out.gid = checkId(`${field}.gid`, user.gid);
  if (user.group !== undefined) out.group = checkName(`${field}.group`, user.group);
  if (user.groups !== undefined) out.groups = groups.map((g, i) => (typeof g === 'number' ? checkId(`${field}.groups[${i}]`, g) : checkName(`${field}.groups[${i}]`, g)));
  return out;
}

/** Refuses a PATH whose directories, each joined to `command`, would make too many bytes of paths to try. */
function checkSearchPath(command: string, searchPath: string): void {
  const entries = searchPath.split(':');
  let candidateBytes = 0;
  for (const dir of entries) candidateBytes += bytes(dir) + 1 + bytes(command);
  if (candidateBytes > SPEC_BOUNDS.searchPathBytes) {
    throw new ValidationError(
      'env.PATH',
      `its ${entries.length} directories, each joined to the command's ${bytes(command)} bytes, make ${candidateBytes} bytes of paths to try (at most ${SPEC_BOUNDS.searchPathBytes}); use a shorter PATH, or give the command as a path`,
    );
  }
}

/** Validates everything but the limits (the cgroup driver validates those) and applies defaults. */
export function resolveJobSpec(spec: JobSpec, naming: JobNaming = {}): ResolvedJobSpec {
  if (typeof spec !== 'object' || spec === null) throw new ValidationError('spec', 'must be an object');
  const command = checkString('command', spec.command, SPEC_BOUNDS.commandBytes, false);
  let total = bytes(command);

  const argsIn = spec.args ?? [];
  if (!Array.isArray(argsIn)) throw new ValidationError('args', 'must be an array of strings');
  if (argsIn.length > SPEC_BOUNDS.argCount) throw new ValidationError('args', `has more than ${SPEC_BOUNDS.argCount} entries`);
  const args = argsIn.map((arg, i) => {
    const checked = checkString(`args[${i}]`, arg, SPEC_BOUNDS.stringBytes);
    total += bytes(checked) + 1;
    return checked;
  });

  const envIn = spec.env ?? {};
  if (typeof envIn !== 'object' || envIn === null || Array.isArray(envIn)) {
    throw new ValidationError('env', 'must be an object of NAME: value strings');
  }
  const entries = Object.entries(envIn);
  if (entries.length > SPEC_BOUNDS.envCount) throw new ValidationError('env', `has more than ${SPEC_BOUNDS.envCount} variables`);
  const env: Record<string, string> = {};
  for (const [name, value] of entries) {
    checkString('env name', name, SPEC_BOUNDS.envNameBytes, false);
    if (name.includes('=')) throw new ValidationError(`env.${name}`, 'name must not contain "="');
    env[name] = checkString(`env.${name}`, value, SPEC_BOUNDS.stringBytes);
    total += bytes(name) + bytes(value) + 2;
  }
  if (!Object.hasOwn(env, 'PATH')) {
    env.PATH = DEFAULT_JOB_PATH;
    total += bytes(DEFAULT_JOB_PATH) + 6;
  }
  if (total > SPEC_BOUNDS.totalBytes) {
    throw new ValidationError('args', `argv and env together exceed ${SPEC_BOUNDS.totalBytes} bytes`);
  }
  if (!command.includes('/')) checkSearchPath(command, env.PATH!);

  const cwd = spec.cwd === undefined ? null : checkString('cwd', spec.cwd, SPEC_BOUNDS.pathBytes, false);
  if (cwd !== null && !path.isAbsolute(cwd)) throw new ValidationError('cwd', 'must be an absolute path');
  // /proc/<pid>/cwd, /proc/self/fd/<n> and the like lead to where a process is, whatever is mounted
  // over the way there: out of the job's view (docs/security.md).
  if (cwd !== null && /^\/+proc(\/|$)/.test(path.posix.normalize(cwd))) {
    throw new ValidationError('cwd', `${cwd} is under /proc, whose links lead outside the job's view; give a directory elsewhere`);
  }

  const owner = checkString('owner', spec.owner ?? '', SPEC_BOUNDS.ownerBytes);

  const user = spec.user === undefined || spec.user === null ? null : checkJobUser('user', spec.user);
  if (spec.isolation !== undefined && (typeof spec.isolation !== 'object' || spec.isolation === null)) throw new ValidationError('isolation', 'must be an object');

  const limits = spec.limits ?? {};
  if (typeof limits !== 'object' || limits === null) throw new ValidationError('limits', 'must be an object');
  const maxRuntimeMs = spec.maxRuntimeMs ?? null;
  if (maxRuntimeMs !== null && !(Number.isInteger(maxRuntimeMs) && maxRuntimeMs >= 1 && maxRuntimeMs <= SPEC_BOUNDS.maxRuntimeMs)) {
    throw new ValidationError('maxRuntimeMs', `must be an integer from 1 to ${SPEC_BOUNDS.maxRuntimeMs} (24.8 days)`);
  }
  const name = checkJobName('name', naming.name);
  const labels = checkLabels('labels', naming.labels);
  return { command, args, env, cwd, limits: Object.assign({}, limits), owner, user, isolation: spec.isolation, maxRuntimeMs, name, labels };
}
