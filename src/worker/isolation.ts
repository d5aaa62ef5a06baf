// How a job is isolated from the host and from other jobs: which namespaces it gets, its network,
// a read-only root, bind mounts. The Worker applies its defaults and the rules that make the
// combination safe; who may ask for what is the server's business (src/server/isolation-policy.ts).
import { realpathSync } from 'node:fs';
import * as path from 'node:path';

import { ValidationError } from '../errors';

/** Namespaces a job gets of its own unless told otherwise (the network is chosen apart: `network`). */
export const NAMESPACE_NAMES = ['pid', 'mount', 'cgroup', 'ipc', 'uts'] as const;
export type NamespaceName = (typeof NAMESPACE_NAMES)[number];

/** 'host': the host's network; 'none': a network namespace of its own with only loopback, up. */
export type NetworkMode = 'host' | 'none';

export interface BindMount {
  /** Absolute path on the host. */
  source: string;
  /** Absolute path in the job's view (created if missing). */
  target: string;
  readOnly: boolean;
}

/** What a job asks for; every field absent takes the worker's default. */
export interface JobIsolationSpec {
  /** false for a namespace: the job shares the host's. */
  namespaces?: Partial<Record<NamespaceName, boolean>>;
  network?: NetworkMode;
  /** Everything read-only but the job's scratch directory, its private /tmp, /var/tmp, /dev/shm and writable binds. */
  readOnlyRoot?: boolean;
  mounts?: BindMount[];
}

/** The isolation in force, as recorded and reported. */
export interface JobIsolation {
  namespaces: Record<NamespaceName, boolean>;
  network: NetworkMode;
  readOnlyRoot: boolean;
  mounts: BindMount[];
}

export interface IsolationDefaults {
  namespaces?: Partial<Record<NamespaceName, boolean>>;
  network?: NetworkMode;
  readOnlyRoot?: boolean;
}

export const ISOLATION_BOUNDS = { mounts: 16 } as const;

export const DEFAULT_ISOLATION: Omit<JobIsolation, 'mounts'> = {
  namespaces: { pid: true, mount: true, cgroup: true, ipc: true, uts: true },
  network: 'host',
  readOnlyRoot: false,
};

/** The isolation of a job that did not record one (written before isolation existed): the host's. */
export const HOST_ISOLATION: JobIsolation = {
  namespaces: { pid: false, mount: false, cgroup: false, ipc: false, uts: false },
  network: 'host',
  readOnlyRoot: false,
  mounts: [],
};

function isNetworkMode(value: unknown): value is NetworkMode {
  return value === 'host' || value === 'none';
}

/** PATH_MAX less its NUL, and NAME_MAX: the kernel refuses longer (ENAMETOOLONG). */
const PATH_BYTES = 4095;
const NAME_BYTES = 255;

function checkPath(field: string, value: unknown): string {
  if (typeof value !== 'string' || !path.isAbsolute(value)) throw new ValidationError(field, 'must be an absolute path');
  if (value.includes('\0')) throw new ValidationError(field, 'must not contain NUL bytes');
  if (Buffer.byteLength(value) > PATH_BYTES) throw new ValidationError(field, `is longer than ${PATH_BYTES} bytes`);
  if (value.split('/').some((name) => Buffer.byteLength(name) > NAME_BYTES)) throw new ValidationError(field, `has a name longer than ${NAME_BYTES} bytes`);
  return path.resolve(value);
}

/** `p` with its symbolic links resolved; `p` itself if it cannot be (the bind then fails, saying why). */
function realPathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);

/** `choices` over `base`, checked (`field` names them in errors). */
function applyChoices(field: string, base: Omit<JobIsolation, 'mounts'>, choices: IsolationDefaults | undefined): Omit<JobIsolation, 'mounts'> {
  const namespaces = { ...base.namespaces };
  const asked = choices?.namespaces ?? {};
  if (typeof asked !== 'object' || asked === null) throw new ValidationError(`${field}.namespaces`, 'must be an object of namespace: true|false');
  for (const [name, on] of Object.entries(asked)) {
    if (!(NAMESPACE_NAMES as readonly string[]).includes(name)) throw new ValidationError(`${field}.namespaces.${name}`, `is not a namespace (${NAMESPACE_NAMES.join(', ')})`);
    if (on === undefined) continue;
    if (typeof on !== 'boolean') throw new ValidationError(`${field}.namespaces.${name}`, 'must be true or false');
    namespaces[name as NamespaceName] = on;
  }
  const network = choices?.network ?? base.network;
  if (!isNetworkMode(network)) throw new ValidationError(`${field}.network`, 'must be "host" or "none"');
  const readOnlyRoot = choices?.readOnlyRoot ?? base.readOnlyRoot;
  if (typeof readOnlyRoot !== 'boolean') throw new ValidationError(`${field}.readOnlyRoot`, 'must be true or false');
  return { namespaces, network, readOnlyRoot };
}

/** The defaults with every field filled in, checked (`field` names them in errors). */
export function resolveIsolationDefaults(field: string, defaults: IsolationDefaults | undefined): Omit<JobIsolation, 'mounts'> {
  return applyChoices(field, DEFAULT_ISOLATION, defaults);
}

export interface IsolationContext {
  defaults: Omit<JobIsolation, 'mounts'>;
  /** Paths no job may see, nor bind: the state directory, the scratch root, the daemon's config and keys. */
  hiddenPaths: readonly string[];
  /** The job runs as a dynamic uid: it must leave nothing behind outside its scratch directory. */
  dynamicUser: boolean;
}

/**
 * The isolation a job gets: its spec over the defaults, checked. A dynamic user always has its own
 * mount namespace and a read-only root (systemd's DynamicUser= implies ProtectSystem=strict and
 * PrivateTmp= for the same reason): the uid goes to another job later, so it must not own anything
 * on the host by then, and its scratch directory is the one place it can write that outlives it.
 */
export function resolveIsolation(spec: JobIsolationSpec | undefined, context: IsolationContext): JobIsolation {
  if (spec !== undefined && (typeof spec !== 'object' || spec === null)) throw new ValidationError('isolation', 'must be an object');
  const chosen = applyChoices('isolation', context.defaults, spec);
  const mountsIn = spec?.mounts ?? [];
  if (!Array.isArray(mountsIn) || mountsIn.length > ISOLATION_BOUNDS.mounts) {
    throw new ValidationError('isolation.mounts', `must be an array of at most ${ISOLATION_BOUNDS.mounts} binds`);
  }
  const mounts = mountsIn.map((mount, i): BindMount => {
    const field = `isolation.mounts[${i}]`;
    const source = checkPath(`${field}.source`, mount?.source);
    const target = checkPath(`${field}.target`, mount?.target);
    if (target === '/') throw new ValidationError(`${field}.target`, 'must not be / (use readOnlyRoot for the root)');
    // As named and after its links (the bind follows them): a link to the state directory is it.
    for (const named of new Set([source, realPathOrSelf(source)])) {
      for (const hidden of context.hiddenPaths) {
        if (within(named, hidden) || within(hidden, named)) {
          throw new ValidationError(`${field}.source`, `${source} would show ${hidden}, which no job may see`);
        }
      }
    }
    return { source, target, readOnly: mount.readOnly === true };
  });
  const isolation: JobIsolation = { namespaces: chosen.namespaces, network: chosen.network, readOnlyRoot: chosen.readOnlyRoot, mounts };
  if (context.dynamicUser) {
    if (spec?.namespaces?.mount === false) {
      throw new ValidationError('isolation.namespaces.mount', 'a job with a dynamic uid always has its own mount namespace (it must leave nothing behind); run it as a mapped or requested user to share the host\'s');
    }
    if (spec?.readOnlyRoot === false) {
      throw new ValidationError('isolation.readOnlyRoot', 'a job with a dynamic uid always has a read-only root (it must leave nothing behind); run it as a mapped or requested user, or bind a writable directory');
    }
    isolation.namespaces.mount = true;
    isolation.readOnlyRoot = true;
  }
  if (!isolation.namespaces.mount) {
    if (isolation.readOnlyRoot) throw new ValidationError('isolation.readOnlyRoot', 'needs the mount namespace');
    if (mounts.length > 0) throw new ValidationError('isolation.mounts', 'need the mount namespace');
  }
  return isolation;
}
