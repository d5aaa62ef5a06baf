// What a job is asked to be, and the checks at the library's boundary. Every input is bounded.
import * as path from 'node:path';

import type { Limits } from '../cgroup';
import { ValidationError } from '../errors';
import { DEFAULT_JOB_PATH } from '../job-path';

export { DEFAULT_JOB_PATH };

export interface JobUser {
  uid: number;
  gid: number;
  /** Supplementary groups; default none. */
  groups?: number[];
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
  /** Absolute working directory; default "/". */
  cwd?: string;
  limits?: Limits;
  /** Identity the job belongs to (the gRPC server passes the caller's certificate name). */
  owner?: string;
  /** Run as this user instead of the daemon's (root). */
  user?: JobUser;
  /**
   * The longest it may run, in ms from its start (systemd's RuntimeMaxSec=): then it is stopped
   * like Job.stop() with the default grace, and ends `failed` with `timedOut`. Default: no limit.
   */
  maxRuntimeMs?: number;
}

/** A spec with every default applied, as stored in the job's record. */
export interface ResolvedJobSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  limits: Limits;
  owner: string;
  user: JobUser | null;
  maxRuntimeMs: number | null;
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

/** Checks a user's ids (`field` names it in errors); groups default to none. */
export function resolveJobUser(field: string, user: JobUser): JobUser {
  if (typeof user !== 'object' || user === null) throw new ValidationError(field, 'must be an object with uid and gid');
  const groups = user.groups ?? [];
  if (!Array.isArray(groups) || groups.length > SPEC_BOUNDS.groups) {
    throw new ValidationError(`${field}.groups`, `must be an array of at most ${SPEC_BOUNDS.groups} group ids`);
  }
  return {
    uid: checkId(`${field}.uid`, user.uid),
    gid: checkId(`${field}.gid`, user.gid),
    groups: groups.map((g, i) => checkId(`${field}.groups[${i}]`, g)),
  };
}

/** Validates everything but the limits (the cgroup driver validates those) and applies defaults. */
export function resolveJobSpec(spec: JobSpec): ResolvedJobSpec {
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

  const cwd = checkString('cwd', spec.cwd ?? '/', SPEC_BOUNDS.pathBytes, false);
  if (!path.isAbsolute(cwd)) throw new ValidationError('cwd', 'must be an absolute path');

  const owner = checkString('owner', spec.owner ?? '', SPEC_BOUNDS.ownerBytes);

  const user = spec.user === undefined || spec.user === null ? null : resolveJobUser('user', spec.user);

  const limits = spec.limits ?? {};
  if (typeof limits !== 'object' || limits === null) throw new ValidationError('limits', 'must be an object');
  const maxRuntimeMs = spec.maxRuntimeMs ?? null;
  if (maxRuntimeMs !== null && !(Number.isInteger(maxRuntimeMs) && maxRuntimeMs >= 1 && maxRuntimeMs <= SPEC_BOUNDS.maxRuntimeMs)) {
    throw new ValidationError('maxRuntimeMs', `must be an integer from 1 to ${SPEC_BOUNDS.maxRuntimeMs} (24.8 days)`);
  }
  return { command, args, env, cwd, limits: { ...limits }, owner, user, maxRuntimeMs };
}
