// The daemon's configuration: built-in defaults, then the config file (JSON), then environment
// variables, then command-line flags — each overriding the one before. Unknown keys and wrong types
// are errors that name the key and the file, so a typo never silently means "default".
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import * as t from 'typanion';

import { JobworkerError, errorCode } from '../errors';
import type { LogFormat, LogLevel } from '../logger';
import { DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN, DEFAULT_STATE_DIR } from '../paths';
import type { TlsFilePaths } from '../pki';
import { ROLES, type Role } from '../pki/roles';
import { DEFAULT_JOB_POLICY, type IsolationOptOuts } from '../server';
import { DEFAULT_DYNAMIC_UID_RANGE, type NamespaceName } from '../worker';

export interface DaemonConfig {
  listen: string;
  /** null: no metrics listener. */
  metricsListen: string | null;
  stateDir: string;
  /** A delegated cgroup path for jobs; default: beneath the daemon's own cgroup (`cgroupRootName`). */
  cgroupRoot: string | null;
  /** null: "jobworker-" and a hash of the state directory's path (one root per state directory). */
  cgroupRootName: string | null;
  tls: TlsFilePaths | null;
  defaults: {
    cpu?: number;
    memoryBytes?: number;
    pids?: number;
    logMaxBytes?: number;
    stopGraceMs?: number;
  };
  retention: { maxFinishedJobs?: number; maxAgeMs?: number };
  /** Identity (certificate CN) → the host user its jobs run as; other identities' jobs get dynamic uids. */
  identities: Record<string, IdentityUser>;
  /** The range dynamic uids come from. */
  dynamicUids: { first: number; count: number };
  /** Scratch directories: null root = "<stateDir>-scratch". */
  scratch: { root: string | null; keep: boolean };
  isolation: IsolationConfig;
  maxRunningJobs?: number;
  /** What each identity may use, all its jobs together (docs/security.md, "Tenancy"); unset: host defaults. */
  identityLimits: IdentityLimitsConfig;
  /** Per identity (certificate name), over identityLimits. */
  identityOverrides: Record<string, IdentityLimitsConfig>;
  /** Identities given metric series of their own (those closest to a quota). */
  metricsIdentities?: number;
  /**
   * Open streams one identity may hold — StreamLogs, WatchJobs, health Watch, reflection (a log or
   * watch stream can hold ~3 MiB for a client that stops reading). Default 1024.
   */
  maxStreamsPerIdentity?: number;
  /**
   * Jobs with a change a WatchJobs client has not read yet, at most (changes are coalesced per job);
   * past it the stream ends with RESOURCE_EXHAUSTED. Default 10000.
   */
  maxUnreadWatchJobs?: number;
  /** Connections, bounded at accept (before TLS) and per connection (docs/security.md, "Bounds"). */
  connections: {
    /** Open connections at most; more are closed at accept. Default 1024. */
    max?: number;
    /** Open connections from one peer address at most. Default 128. */
    maxPerAddress?: number;
    /** A TLS handshake not done by then is cut. Default 10000. */
    handshakeTimeoutMs?: number;
    /** Calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). Default 256. */
    maxStreamsPerConnection?: number;
  };
  /** The fd budget: RLIMIT_NOFILE less what the daemon keeps for itself (docs/reliability.md). */
  fileDescriptors: {
    /** Fds kept for the daemon beyond those open at start. Default 256. */
    reserve?: number;
    /** Share of the budget one identity's running jobs may hold, 0–1. Default 0.5. */
    identityJobShare?: number;
    /** Share of the budget one identity's log streams may hold, 0–1. Default 0.25. */
    identityStreamShare?: number;
  };
  /** StreamLogs tail/since scans at once (they share libuv's 4 threads with every spawn). */
  logScans: { max?: number; maxPerIdentity?: number };
  /** Interval of the aggregated audit lines for refused calls and connections. Default 10000. */
  refusalLogIntervalMs?: number;
  log: { level: LogLevel; format: LogFormat | null };
  /** On SIGTERM: stop running jobs (recorded as stopped) or leave them to be recovered as lost. */
  shutdown: { stopJobs: boolean; graceMs: number };
  /** Pools of daemons fed through NATS JetStream (docs/fleet.md); null: this daemon alone. */
  fleet: FleetConfig | null;
}

/** A host user by name or number, its primary group and supplementary groups (default: the user's own). */
export interface IdentityUser {
  user: string | number;
  group?: string | number;
  groups?: (string | number)[];
}

export interface IsolationConfig {
  /** Namespaces jobs get by default (each true unless set false). */
  namespaces: Partial<Record<NamespaceName, boolean>>;
  network: 'host' | 'none';
  readOnlyRoot: boolean;
  /** Roles that may ask, per job, for less than these defaults. */
  optOuts: IsolationOptOuts;
  /** Roles that may bind host paths into jobs. */
  mounts: Role[];
  /** More directories hidden from every job (the state directory, the config's and the TLS files' are always). */
  hide: string[];
}

export interface FleetConfig {
  nats: { servers: string[]; tls: TlsFilePaths; replicas: number };
  /** This daemon's name in the fleet; default: the machine's host name. */
  host: string | null;
  /** HOST or HOST:PORT clients reach this daemon at (in its server certificate); default: the listen address. */
  advertise: string | null;
  /** Pools whose jobs this daemon runs. */
  pools: string[];
  capacity: { jobs: number; memoryBytes?: number; cpu?: number };
  heartbeatTtlMs: number;
}

/** A silent daemon's jobs are declared lost within this by default. */
export const DEFAULT_HEARTBEAT_TTL_MS = 15_000;

const isPositiveInteger = t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(1)]);
const isNonNegativeInteger = t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(0)]);

const isUserOrGroup = t.isOneOf([t.isString(), isNonNegativeInteger]);
const isRoles = t.isArray(t.isEnum(ROLES));

/** An identity's limits and quotas; the values' ranges are checked when the Worker opens. */
const isIdentityLimits = t.isObject({
  memoryBytes: t.isOptional(isPositiveInteger),
  memoryHighBytes: t.isOptional(isPositiveInteger),
  pids: t.isOptional(isPositiveInteger),
  cpu: t.isOptional(t.isNumber()),
  cpuWeight: t.isOptional(isPositiveInteger),
  io: t.isOptional(
    t.isArray(
      t.isObject({
        device: t.isString(),
        readBps: t.isOptional(isPositiveInteger),
        writeBps: t.isOptional(isPositiveInteger),
        readIops: t.isOptional(isPositiveInteger),
        writeIops: t.isOptional(isPositiveInteger),
      }),
    ),
  ),
  maxRunningJobs: t.isOptional(isPositiveInteger),
  logBytes: t.isOptional(isPositiveInteger),
});

export type IdentityLimitsConfig = t.InferType<typeof isIdentityLimits>;

const FILE_CONFIG_SHAPE = {
    listen: t.isOptional(t.isString()),
    metricsListen: t.isOptional(t.isNullable(t.isString())),
    stateDir: t.isOptional(t.isString()),
    cgroupRoot: t.isOptional(t.isNullable(t.isString())),
    cgroupRootName: t.isOptional(t.isString()),
    tls: t.isOptional(t.isObject({ ca: t.isString(), cert: t.isString(), key: t.isString() })),
    defaults: t.isOptional(
      t.isObject({
        cpu: t.isOptional(t.isNumber()),
        memoryBytes: t.isOptional(isPositiveInteger),
        pids: t.isOptional(isPositiveInteger),
        logMaxBytes: t.isOptional(isPositiveInteger),
        stopGraceMs: t.isOptional(isNonNegativeInteger),
      }),
    ),
    retention: t.isOptional(t.isObject({ maxFinishedJobs: t.isOptional(isNonNegativeInteger), maxAgeMs: t.isOptional(isPositiveInteger) })),
    maxRunningJobs: t.isOptional(isPositiveInteger),
    maxStreamsPerIdentity: t.isOptional(isPositiveInteger),
    identities: t.isOptional(
      t.isDict(t.isObject({ user: isUserOrGroup, group: t.isOptional(isUserOrGroup), groups: t.isOptional(t.isArray(isUserOrGroup)) })),
    ),
    dynamicUids: t.isOptional(t.isObject({ first: isPositiveInteger, count: isPositiveInteger })),
    scratch: t.isOptional(t.isObject({ root: t.isOptional(t.isNullable(t.isString())), keep: t.isOptional(t.isBoolean()) })),
    isolation: t.isOptional(
      t.isObject({
        namespaces: t.isOptional(t.isObject({ pid: t.isOptional(t.isBoolean()), mount: t.isOptional(t.isBoolean()), cgroup: t.isOptional(t.isBoolean()), ipc: t.isOptional(t.isBoolean()), uts: t.isOptional(t.isBoolean()) })),
        network: t.isOptional(t.isEnum(['host', 'none'])),
        readOnlyRoot: t.isOptional(t.isBoolean()),
        optOuts: t.isOptional(
          t.isObject({
            pid: t.isOptional(isRoles),
            mount: t.isOptional(isRoles),
            cgroup: t.isOptional(isRoles),
            ipc: t.isOptional(isRoles),
            uts: t.isOptional(isRoles),
            network: t.isOptional(isRoles),
            readOnlyRoot: t.isOptional(isRoles),
          }),
        ),
        mounts: t.isOptional(isRoles),
        hide: t.isOptional(t.isArray(t.isString())),
      }),
    ),
    maxUnreadWatchJobs: t.isOptional(isPositiveInteger),
    identityLimits: t.isOptional(isIdentityLimits),
    identityOverrides: t.isOptional(t.isRecord(isIdentityLimits)),
    metricsIdentities: t.isOptional(isNonNegativeInteger),
    connections: t.isOptional(
      t.isObject({
        max: t.isOptional(isPositiveInteger),
        maxPerAddress: t.isOptional(isPositiveInteger),
        handshakeTimeoutMs: t.isOptional(isPositiveInteger),
        maxStreamsPerConnection: t.isOptional(isPositiveInteger),
      }),
    ),
    fileDescriptors: t.isOptional(
      t.isObject({
        reserve: t.isOptional(isNonNegativeInteger),
        identityJobShare: t.isOptional(t.cascade(t.isNumber(), [t.isInInclusiveRange(0.01, 1)])),
        identityStreamShare: t.isOptional(t.cascade(t.isNumber(), [t.isInInclusiveRange(0.01, 1)])),
      }),
    ),
    logScans: t.isOptional(t.isObject({ max: t.isOptional(isPositiveInteger), maxPerIdentity: t.isOptional(isPositiveInteger) })),
    refusalLogIntervalMs: t.isOptional(isPositiveInteger),
    log: t.isOptional(t.isObject({ level: t.isOptional(t.isEnum(['debug', 'info', 'warn', 'error'])), format: t.isOptional(t.isEnum(['json', 'text'])) })),
    shutdown: t.isOptional(t.isObject({ stopJobs: t.isOptional(t.isBoolean()), graceMs: t.isOptional(isNonNegativeInteger) })),
    fleet: t.isOptional(
      t.isNullable(
        t.isObject({
          nats: t.isObject({
            servers: t.cascade(t.isArray(t.isString()), [t.hasMinLength(1), t.hasMaxLength(16)]),
            tls: t.isObject({ ca: t.isString(), cert: t.isString(), key: t.isString() }),
            replicas: t.isOptional(t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(1, 5)])),
          }),
          host: t.isOptional(t.isString()),
          advertise: t.isOptional(t.isString()),
          pools: t.isOptional(t.cascade(t.isArray(t.isString()), [t.hasMaxLength(64)])),
          capacity: t.isOptional(t.isObject({ jobs: isPositiveInteger, memoryBytes: t.isOptional(isPositiveInteger), cpu: t.isOptional(t.cascade(t.isNumber(), [t.isAtLeast(0.01)])) })),
          heartbeatTtlMs: t.isOptional(t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(1000, 600_000)])),
        }),
      ),
    ),
};

const isFileConfig = t.isObject(FILE_CONFIG_SHAPE);

/** Every key a config file may have (README's example shows each). */
export const CONFIG_FILE_KEYS: readonly string[] = Object.keys(FILE_CONFIG_SHAPE);

export type FileConfig = NonNullable<t.InferType<typeof isFileConfig>>;

export function defaultConfig(): DaemonConfig {
  return {
    listen: DEFAULT_LISTEN,
    metricsListen: DEFAULT_METRICS_LISTEN,
    stateDir: DEFAULT_STATE_DIR,
    cgroupRoot: null,
    cgroupRootName: null,
    tls: null,
    defaults: {},
    retention: {},
    identities: {},
    dynamicUids: { ...DEFAULT_DYNAMIC_UID_RANGE },
    scratch: { root: null, keep: false },
    isolation: {
      namespaces: {},
      network: 'host',
      readOnlyRoot: false,
      optOuts: { ...DEFAULT_JOB_POLICY.optOuts },
      mounts: [...DEFAULT_JOB_POLICY.mounts],
      hide: [],
    },
    identityLimits: {},
    identityOverrides: {},
    connections: {},
    fileDescriptors: {},
    logScans: {},
    log: { level: 'info', format: null },
    shutdown: { stopJobs: true, graceMs: 10_000 },
    fleet: null,
  };
}

/** Reads and checks a config file; paths in it are relative to the file. */
export function readConfigFile(file: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new JobworkerError('invalid-argument', `config file ${file}: cannot read it (${errorCode(error) ?? String(error)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new JobworkerError('invalid-argument', `config file ${file}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof value === 'object' && value !== null && 'jobUser' in value) {
    throw new JobworkerError(
      'invalid-argument',
      `config file ${file}: "jobUser" is no longer supported: one user shared by every writer let their jobs read and signal each other's. ` +
        'Jobs of identities without a user of their own now run as dynamic uids (one per job, "dynamicUids"); to run an identity\'s jobs as a host user, ' +
        'map it: "identities": { "<certificate CN>": { "user": "nobody" } } (docs/security.md, "Who a job runs as")',
    );
  }
  const errors: string[] = [];
  if (!isFileConfig(value, { errors })) {
    throw new JobworkerError('invalid-argument', `config file ${file}: ${errors.map((e) => e.replace(/^\./, '')).join('; ')}`);
  }
  const dir = path.dirname(path.resolve(file));
  const resolve = (p: string) => path.resolve(dir, p);
  if (value.tls) value.tls = { ca: resolve(value.tls.ca), cert: resolve(value.tls.cert), key: resolve(value.tls.key) };
  if (value.stateDir) value.stateDir = resolve(value.stateDir);
  if (value.scratch?.root) value.scratch.root = resolve(value.scratch.root);
  if (value.isolation?.hide) value.isolation.hide = value.isolation.hide.map(resolve);
  const natsTls = value.fleet?.nats.tls;
  if (natsTls) value.fleet!.nats.tls = { ca: resolve(natsTls.ca), cert: resolve(natsTls.cert), key: resolve(natsTls.key) };
  return value;
}

export function applyFileConfig(config: DaemonConfig, file: FileConfig): DaemonConfig {
  return {
    listen: file.listen ?? config.listen,
    metricsListen: file.metricsListen === undefined ? config.metricsListen : file.metricsListen,
    stateDir: file.stateDir ?? config.stateDir,
    cgroupRoot: file.cgroupRoot === undefined ? config.cgroupRoot : file.cgroupRoot,
    cgroupRootName: file.cgroupRootName ?? config.cgroupRootName,
    tls: file.tls ? { caPath: file.tls.ca, certificatePath: file.tls.cert, privateKeyPath: file.tls.key } : config.tls,
    defaults: { ...config.defaults, ...file.defaults },
    retention: { ...config.retention, ...file.retention },
    maxRunningJobs: file.maxRunningJobs ?? config.maxRunningJobs,
    maxStreamsPerIdentity: file.maxStreamsPerIdentity ?? config.maxStreamsPerIdentity,
    identities: { ...config.identities, ...file.identities },
    dynamicUids: file.dynamicUids ?? config.dynamicUids,
    scratch: { root: file.scratch?.root === undefined ? config.scratch.root : file.scratch.root, keep: file.scratch?.keep ?? config.scratch.keep },
    isolation: {
      namespaces: { ...config.isolation.namespaces, ...file.isolation?.namespaces },
      network: file.isolation?.network ?? config.isolation.network,
      readOnlyRoot: file.isolation?.readOnlyRoot ?? config.isolation.readOnlyRoot,
      optOuts: { ...config.isolation.optOuts, ...file.isolation?.optOuts },
      mounts: file.isolation?.mounts ?? config.isolation.mounts,
      hide: file.isolation?.hide ?? config.isolation.hide,
    },
    maxUnreadWatchJobs: file.maxUnreadWatchJobs ?? config.maxUnreadWatchJobs,
    identityLimits: { ...config.identityLimits, ...file.identityLimits },
    identityOverrides: { ...config.identityOverrides, ...file.identityOverrides },
    metricsIdentities: file.metricsIdentities ?? config.metricsIdentities,
    connections: { ...config.connections, ...file.connections },
    fileDescriptors: { ...config.fileDescriptors, ...file.fileDescriptors },
    logScans: { ...config.logScans, ...file.logScans },
    refusalLogIntervalMs: file.refusalLogIntervalMs ?? config.refusalLogIntervalMs,
    log: { level: file.log?.level ?? config.log.level, format: file.log?.format ?? config.log.format },
    shutdown: { stopJobs: file.shutdown?.stopJobs ?? config.shutdown.stopJobs, graceMs: file.shutdown?.graceMs ?? config.shutdown.graceMs },
    fleet: file.fleet === undefined ? config.fleet : fleetConfigOf(file.fleet),
  };
}

function fleetConfigOf(fleet: FileConfig['fleet']): FleetConfig | null {
  if (fleet === undefined || fleet === null) return null;
  return {
    nats: {
      servers: fleet.nats.servers,
      tls: { caPath: fleet.nats.tls.ca, certificatePath: fleet.nats.tls.cert, privateKeyPath: fleet.nats.tls.key },
      replicas: fleet.nats.replicas ?? 1,
    },
    host: fleet.host ?? null,
    advertise: fleet.advertise ?? null,
    pools: fleet.pools ?? [],
    capacity: fleet.capacity ?? { jobs: 16 },
    heartbeatTtlMs: fleet.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS,
  };
}

/** The environment variables the daemon reads, and what each sets. */
export const ENV_VARIABLES = {
  JOBWORKER_LISTEN: 'listen address, HOST:PORT',
  JOBWORKER_METRICS_LISTEN: 'metrics listen address, HOST:PORT, or "off"',
  JOBWORKER_STATE_DIR: 'state directory',
  JOBWORKER_CGROUP_ROOT: 'delegated cgroup path for jobs',
  JOBWORKER_TLS_CA: 'CA certificate (PEM) clients are verified against',
  JOBWORKER_TLS_CERT: 'server certificate (PEM)',
  JOBWORKER_TLS_KEY: 'server private key (PEM)',
  JOBWORKER_LOG_LEVEL: 'debug, info, warn or error',
  JOBWORKER_LOG_FORMAT: 'json or text',
} as const;

export function applyEnvironment(config: DaemonConfig, env: NodeJS.ProcessEnv): DaemonConfig {
  const out = structuredClone(config);
  const get = (name: keyof typeof ENV_VARIABLES) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  out.listen = get('JOBWORKER_LISTEN') ?? out.listen;
  const metrics = get('JOBWORKER_METRICS_LISTEN');
  if (metrics !== undefined) out.metricsListen = metrics === 'off' ? null : metrics;
  out.stateDir = get('JOBWORKER_STATE_DIR') ?? out.stateDir;
  out.cgroupRoot = get('JOBWORKER_CGROUP_ROOT') ?? out.cgroupRoot;
  const tls = [get('JOBWORKER_TLS_CA'), get('JOBWORKER_TLS_CERT'), get('JOBWORKER_TLS_KEY')];
  if (tls.some((v) => v !== undefined)) {
    if (tls.some((v) => v === undefined)) {
      throw new JobworkerError('invalid-argument', 'JOBWORKER_TLS_CA, JOBWORKER_TLS_CERT and JOBWORKER_TLS_KEY must be set together');
    }
    out.tls = { caPath: tls[0]!, certificatePath: tls[1]!, privateKeyPath: tls[2]! };
  }
  const level = get('JOBWORKER_LOG_LEVEL');
  if (level !== undefined) {
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new JobworkerError('invalid-argument', `JOBWORKER_LOG_LEVEL: expected debug, info, warn or error, got ${level}`);
    out.log.level = level as LogLevel;
  }
  const format = get('JOBWORKER_LOG_FORMAT');
  if (format !== undefined) {
    if (format !== 'json' && format !== 'text') throw new JobworkerError('invalid-argument', `JOBWORKER_LOG_FORMAT: expected json or text, got ${format}`);
    out.log.format = format;
  }
  return out;
}
