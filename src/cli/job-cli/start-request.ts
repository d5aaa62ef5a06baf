// What `start` and `run` send: the job's command, environment, working directory and limits, from
// their shared flags. The mapping is pure (buildStartRequest); the flags live on JobSpecCommand.
import { readFileSync } from 'node:fs';

import { Option } from 'clipanion';

import { errorCode } from '../../errors';

import type { LimitsRequest, StartJobRequest } from '../../client';
import { flagError } from '../run';
import { ClientCommand, parseFlag } from './client-command';
import { parseDeviceValue, parseDuration, parseInteger, parsePositiveNumber, parseSize, UnitError } from './units';

export interface JobSpecFlags {
  command: string[];
  cpu?: string | undefined;
  cpuWeight?: string | undefined;
  memory?: string | undefined;
  memoryHigh?: string | undefined;
  pids?: string | undefined;
  ioReadBps?: string[] | undefined;
  ioWriteBps?: string[] | undefined;
  ioReadIops?: string[] | undefined;
  ioWriteIops?: string[] | undefined;
  env?: string[] | undefined;
  /** The --env-file files' contents, in the order given. */
  envFiles?: { file: string; text: string }[] | undefined;
  cwd?: string | undefined;
  user?: string | undefined;
  pool?: string | undefined;
  retries?: string | undefined;
  maxRuntime?: string | undefined;
}

export type StartRequest = StartJobRequest & { args: string[]; env: Record<string, string>; cwd: string; limits: LimitsRequest & { io: NonNullable<LimitsRequest['io']> } };

const MAX_UINT32 = 4_294_967_295;
/** The daemon's timer limit (2^31-1 ms, 24.8 days). */
const MAX_RUNTIME_MS = 2_147_483_647;
const IO_FLAGS = [
  ['ioReadBps', '--io-read-bps', 'readBytesPerSecond', parseSize],
  ['ioWriteBps', '--io-write-bps', 'writeBytesPerSecond', parseSize],
  ['ioReadIops', '--io-read-iops', 'readIops', (text: string) => parseInteger(text, 1, Number.MAX_SAFE_INTEGER)],
  ['ioWriteIops', '--io-write-iops', 'writeIops', (text: string) => parseInteger(text, 1, Number.MAX_SAFE_INTEGER)],
] as const;

/**
 * The request for the flags given; a bad value is a usage error naming its flag. `clientEnv` is
 * job-cli's own environment, for `-e NAME` (and NAME alone in an env file).
 */
export function buildStartRequest(flags: JobSpecFlags, clientEnv: Readonly<Record<string, string | undefined>> = {}): StartRequest {
  const [command, ...args] = flags.command;
  if (command === undefined || command === '') throw flagError('COMMAND', 'give the command to run after "--", e.g. `-- sleep 10`');

  const limits: StartRequest['limits'] = { io: [] };
  if (flags.cpu !== undefined) limits.cpu = parseFlag('--cpu', flags.cpu, parsePositiveNumber);
  if (flags.cpuWeight !== undefined) limits.cpuWeight = parseFlag('--cpu-weight', flags.cpuWeight, (text) => parseInteger(text, 1, 10_000));
  if (flags.memory !== undefined) limits.memoryBytes = parseFlag('--memory', flags.memory, parseSize);
  if (flags.memoryHigh !== undefined) limits.memoryHighBytes = parseFlag('--memory-high', flags.memoryHigh, parseSize);
  if (flags.pids !== undefined) limits.pids = parseFlag('--pids', flags.pids, (text) => parseInteger(text, 1, MAX_UINT32));
  for (const [key, flag, field, parse] of IO_FLAGS) {
    for (const text of flags[key] ?? []) {
      const { device, value } = parseFlag(flag, text, (t) => parseDeviceValue(t, parse));
      let entry = limits.io.find((io) => io.device === device);
      if (entry === undefined) {
        entry = { device };
        limits.io.push(entry);
      }
      if (entry[field] !== undefined) throw flagError(flag, `device ${device === '' ? '(the working directory\'s disk)' : device} is given twice`);
      entry[field] = value;
    }
  }

  const env: Record<string, string> = {};
  for (const { file, text } of flags.envFiles ?? []) {
    for (const [index, raw] of text.split('\n').entries()) {
      const line = raw.replace(/\r$/, '');
      if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
      const variable = parseEnvEntry(line.trimStart(), clientEnv);
      if (variable === 'bad') throw flagError('--env-file', `${file}:${index + 1}: expected NAME=VALUE or NAME, got ${JSON.stringify(line.slice(0, 80))}`);
      if (variable !== null) env[variable.name] = variable.value; // a later line wins, as with docker
    }
  }
  const given = new Set<string>();
  for (const entry of flags.env ?? []) {
    const variable = parseEnvEntry(entry, clientEnv);
    if (variable === 'bad') throw flagError('--env', `expected NAME=VALUE, or NAME to pass job-cli's own value, got ${JSON.stringify(entry)}`);
    const name = variable?.name ?? entry;
    if (given.has(name)) throw flagError('--env', `${name} is given twice`);
    given.add(name);
    if (variable !== null) env[name] = variable.value;
  }

  if (flags.cwd !== undefined && !flags.cwd.startsWith('/')) {
    throw flagError('--cwd', `must be an absolute path on the daemon's host, got ${JSON.stringify(flags.cwd)}`);
  }
  const request: StartRequest = { command, args, env, cwd: flags.cwd ?? '', limits };
  if (flags.user !== undefined) request.user = parseFlag('--user', flags.user, parseUser);
  if (flags.pool !== undefined) {
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(flags.pool)) throw flagError('--pool', `expected 1-32 of a-z, 0-9 and '-', got ${JSON.stringify(flags.pool)}`);
    request.pool = flags.pool;
  }
  if (flags.retries !== undefined) {
    if (flags.pool === undefined) throw flagError('--retries', 'is only for pool jobs: give --pool too');
    request.retries = parseFlag('--retries', flags.retries, (text) => parseInteger(text, 0, 10));
  }
  if (flags.maxRuntime !== undefined) {
    if (flags.pool !== undefined) throw flagError('--max-runtime', 'is not supported for pool jobs yet');
    const ms = parseFlag('--max-runtime', flags.maxRuntime, parseDuration);
    if (ms < 1 || ms > MAX_RUNTIME_MS) throw flagError('--max-runtime', `must be from 1ms to 24.8 days (the daemon's timer limit), got ${JSON.stringify(flags.maxRuntime)}`);
    request.maxRuntimeMs = Math.round(ms);
  }
  return request;
}

/**
 * `NAME=VALUE`, or `NAME` alone for job-cli's own value of NAME (null when it has none: the job
 * gets no NAME either, like `docker run -e NAME`). 'bad' for anything else.
 */
function parseEnvEntry(entry: string, clientEnv: Readonly<Record<string, string | undefined>>): { name: string; value: string } | null | 'bad' {
  const at = entry.indexOf('=');
  if (at === 0) return 'bad';
  if (at > 0) return { name: entry.slice(0, at), value: entry.slice(at + 1) };
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(entry)) return 'bad';
  const value = clientEnv[entry];
  return value === undefined ? null : { name: entry, value };
}

/** "UID" or "UID:GID" (numbers: the daemon's host may not know our names); GID defaults to UID. */
function parseUser(text: string): NonNullable<StartJobRequest['user']> {
  const match = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(text);
  const uid = Number(match?.[1]);
  const gid = match?.[2] === undefined ? uid : Number(match[2]);
  if (!match || uid > MAX_UINT32 - 1 || gid > MAX_UINT32 - 1) throw new UnitError(`expected UID or UID:GID (numbers), got ${JSON.stringify(text)}`);
  return { uid, gid, groups: [] };
}

/** The flags of `start` and `run`. */
export abstract class JobSpecCommand extends ClientCommand {
  cpu = Option.String('--cpu', { description: 'CPU quota in CPUs: 0.5 is half of one CPU, 2 is two' });
  cpuWeight = Option.String('--cpu-weight', { description: 'relative CPU weight, 1..10000 (default 100)' });
  memory = Option.String('--memory', { description: 'hard memory limit, e.g. 256M (1024-based); above it the job is OOM-killed' });
  memoryHigh = Option.String('--memory-high', { description: 'soft memory limit: above it the job is throttled and reclaimed' });
  pids = Option.String('--pids', { description: 'most processes and threads at once' });
  ioReadBps = Option.Array('--io-read-bps', { description: 'read bandwidth, DEV=RATE (e.g. /var=10M: the disk holding /var) or RATE (the working directory\'s disk) (repeatable)' });
  ioWriteBps = Option.Array('--io-write-bps', { description: 'write bandwidth, DEV=RATE (repeatable)' });
  ioReadIops = Option.Array('--io-read-iops', { description: 'read operations per second, DEV=N (repeatable)' });
  ioWriteIops = Option.Array('--io-write-iops', { description: 'write operations per second, DEV=N (repeatable)' });
  env = Option.Array('-e,--env', { description: 'environment variable NAME=VALUE, or NAME for job-cli\'s own value of it (repeatable); with --env-file, the whole environment (plus PATH if they leave it out)' });
  envFile = Option.Array('--env-file', { description: 'read variables from a file: NAME=VALUE or NAME lines, # comments (repeatable; --env wins)' });
  cwd = Option.String('--cwd', { description: 'absolute working directory on the daemon\'s host (default /)' });
  user = Option.String('--user', { description: 'run as UID[:GID] instead of the daemon\'s job user (admins only)' });
  pool = Option.String('--pool', { description: 'run it on whichever daemon of this pool has room (docs/fleet.md)' });
  retries = Option.String('--retries', { description: 'pool jobs: re-run it up to N times (0..10) if its daemon is lost; default 0, at most once' });
  maxRuntime = Option.String('--max-runtime', { description: 'stop it after this long, e.g. 10m, 2h (systemd\'s RuntimeMaxSec=): the stop signal, the grace, then a kill; it ends failed, "timed out"' });
  command = Option.Rest({ name: 'COMMAND' });

  protected startRequest(): StartRequest {
    const envFiles = (this.envFile ?? []).map((file) => {
      try {
        return { file, text: readFileSync(file, 'utf8') };
      } catch (error) {
        throw flagError('--env-file', `cannot read ${file} (${errorCode(error) ?? String(error)})`);
      }
    });
    return buildStartRequest({ ...this, envFiles }, this.context.env);
  }
}

/** The part of `--help` about limits, shared by start and run. */
export const LIMITS_DETAILS = `
      Sizes are 1024-based: 256M is 256 MiB (K, M, G, T; KiB, MiB… also work; KB, MB are refused
      as ambiguous). IO flags take DEV=VALUE, where DEV is any path on the disk (/var), a device
      node (/dev/sda, /dev/vda, /dev/nvme0n1: \`lsblk -d\` lists them; a partition means its disk) or
      MAJ:MIN; VALUE alone means the disk behind the job's working directory. Two spellings of one
      disk may set different rates. Limits not
      given take the daemon's defaults. The command runs directly, not through a shell (use sh -c
      for one), looked up in the job's PATH. Its environment is exactly the --env and --env-file
      variables, plus a default PATH when they leave it out (/usr/local/sbin:…:/bin). -e NAME
      passes job-cli's own value of NAME. A command that is not found exits 127, one that cannot be
      executed 126, as in a shell.
`;
