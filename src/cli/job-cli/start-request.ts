// What `start` and `run` send: the job's command, environment, working directory and limits, from
// their shared flags. The mapping is pure (buildStartRequest); the flags live on JobSpecCommand.
import { readFileSync } from 'node:fs';

import { Option } from 'clipanion';

import { errorCode } from '../../errors';
import { isJobName, JOB_NAME_RULE } from '../../job-id';

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
  network?: string | undefined;
  mount?: string[] | undefined;
  readOnly?: boolean | undefined;
  hostNamespace?: string[] | undefined;
  pool?: string | undefined;
  retries?: string | undefined;
  maxRuntime?: string | undefined;
  name?: string | undefined;
  label?: string[] | undefined;
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
  if (flags.user !== undefined) Object.assign(request, parseFlag('--user', flags.user, parseUser));
  if (flags.network !== undefined) {
    if (flags.network !== 'host' && flags.network !== 'none') throw flagError('--network', `expected host or none, got ${JSON.stringify(flags.network)}`);
    request.network = flags.network;
  }
  if (flags.mount !== undefined && flags.mount.length > 0) request.mounts = flags.mount.map((text) => parseFlag('--mount', text, parseMount));
  if (flags.readOnly === true) request.readOnlyRoot = true;
  if (flags.hostNamespace !== undefined && flags.hostNamespace.length > 0) {
    request.hostNamespaces = flags.hostNamespace.map((name) => {
      if (!(HOST_NAMESPACES as readonly string[]).includes(name)) throw flagError('--host-namespace', `expected one of ${HOST_NAMESPACES.join(', ')}, got ${JSON.stringify(name)} (the network: --network host)`);
      return name as (typeof HOST_NAMESPACES)[number];
    });
  }
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
  if (flags.name !== undefined) {
    if (flags.pool !== undefined) throw flagError('--name', 'is not supported for pool jobs yet');
    if (!isJobName(flags.name)) throw flagError('--name', `must be ${JOB_NAME_RULE}, got ${JSON.stringify(flags.name)}`);
    request.name = flags.name;
  }
  if (flags.label !== undefined && flags.label.length > 0) {
    if (flags.pool !== undefined) throw flagError('--label', 'is not supported for pool jobs yet');
    request.labels = parseLabels(flags.label);
  }
  return request;
}

/**
 * --label KEY=VALUE (or KEY, for an empty value), repeatable as --env is: never split at commas,
 * which values may hold. What a key and value may be is the daemon's to check (its refusal names
 * --label).
 */
function parseLabels(entries: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    const key = at < 0 ? entry : entry.slice(0, at);
    if (key === '') throw flagError('--label', `expected KEY=VALUE or KEY, got ${JSON.stringify(entry)}`);
    if (Object.hasOwn(labels, key)) throw flagError('--label', `${key} is given twice`);
    labels[key] = at < 0 ? '' : entry.slice(at + 1);
  }
  return labels;
}

const HOST_NAMESPACES = ['pid', 'mount', 'cgroup', 'ipc', 'uts'] as const;
const NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.@+-]{0,255}\$?$/;

/**
 * NAME|UID[:GROUP]: a user by name (resolved by the daemon: its groups come from there too) or by
 * number; GROUP by name or number (a number with UID; default: the same number, no supplementary groups).
 */
function parseUser(text: string): Pick<StartJobRequest, 'user' | 'userName' | 'groupName'> {
  const [user = '', group, extra] = text.split(':');
  const bad = () => new UnitError(`expected NAME, UID, NAME:GROUP or UID:GID, got ${JSON.stringify(text)}`);
  if (extra !== undefined || user === '' || group === '') throw bad();
  if (/^\d{1,10}$/.test(user)) {
    const uid = Number(user);
    if (group !== undefined && !/^\d+$/.test(group)) throw new UnitError(`with a UID, the group is a GID (a number), got ${JSON.stringify(group)}`);
    const gid = group === undefined ? uid : Number(group);
    if (uid > MAX_UINT32 - 1 || gid > MAX_UINT32 - 1 || (group?.length ?? 0) > 10) throw bad();
    return { user: { uid, gid, groups: [] } };
  }
  if (!NAME.test(user) || (group !== undefined && !NAME.test(group))) throw bad();
  return group === undefined ? { userName: user } : { userName: user, groupName: group };
}

/** SRC:DST[:ro] (absolute paths without ":"). */
function parseMount(text: string): { source: string; target: string; readOnly: boolean } {
  const [source = '', target = '', mode, extra] = text.split(':');
  if (extra !== undefined || !source.startsWith('/') || !target.startsWith('/') || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
    throw new UnitError(`expected SRC:DST or SRC:DST:ro with absolute paths, got ${JSON.stringify(text)}`);
  }
  return { source, target, readOnly: mode === 'ro' };
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
  cwd = Option.String('--cwd', { description: 'absolute working directory on the daemon\'s host, which the job\'s user must be able to enter (default: a scratch directory of the job\'s own, removed with it)' });
  user = Option.String('--user', { description: 'run as NAME, UID, NAME:GROUP or UID:GID, resolved by the daemon (admins only; default: your mapped user, else a dynamic uid)' });
  network = Option.String('--network', { description: 'host (the host\'s network) or none (loopback only); default: the daemon\'s' });
  mount = Option.Array('--mount', { description: 'show host path SRC at DST in the job, SRC:DST[:ro]; DST must exist (repeatable; a role the daemon allows, admins by default)' });
  readOnly = Option.Boolean('--read-only', { description: 'make every mount read-only but the scratch directory, private /tmp and --mount binds' });
  hostNamespace = Option.Array('--host-namespace', { description: 'share the host\'s pid, mount, cgroup, ipc or uts namespace instead of one of its own (repeatable; an opt-out the daemon must allow you)' });
  env = Option.Array('-e,--env', { description: 'environment variable NAME=VALUE, or NAME for job-cli\'s own value of it (repeatable); with --env-file, the whole environment (plus PATH if they leave it out)' });
  envFile = Option.Array('--env-file', { description: 'read variables from a file: NAME=VALUE or NAME lines, # comments (repeatable; --env wins)' });
  pool = Option.String('--pool', { description: 'run it on whichever daemon of this pool has room (docs/fleet.md)' });
  retries = Option.String('--retries', { description: 'pool jobs: re-run it up to N times (0..10) if its daemon is lost; default 0, at most once' });
  name = Option.String('--name', { description: 'a name for the job, usable wherever its id is (unique among your jobs until removed): 1-64 letters, digits, "_", "." or "-"' });
  label = Option.Array('--label', { description: 'a label KEY=VALUE (or KEY, empty value) to find the job by: list --label (repeatable)' });
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

      Isolation: by default the job runs as a dynamic uid of its own (or the user the daemon maps
      you to), in its own PID, mount, cgroup, IPC and UTS namespaces, with a private /tmp, without
      sight of the daemon's files; without --cwd, in a scratch directory of its own that is removed
      with it. --network none gives it only a loopback interface; --read-only a read-only root.
      --host-namespace, --mount and --user need the daemon's permission (admins by default).
`;
