// Who may ask for what of a job's isolation and user (the daemon's config says; admins only by
// default), and the StartJob request turned into the Worker's user choice and isolation spec.
// Asking for more isolation than the default (network none, a read-only root) is anyone's right;
// asking for less, for host paths, or for a user of one's choice is what the policy rations.
import { JobworkerError, ValidationError } from '../errors';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { Role } from '../pki/roles';
import { NAMESPACE_NAMES, type BindMount, type JobIsolationSpec, type JobUserChoice, type JobUserSpec, type NamespaceName } from '../worker';
import type { PeerIdentity } from './peer-identity';

/** Which roles may ask, per job, for less than the defaults. */
export interface IsolationOptOuts {
  pid: readonly Role[];
  mount: readonly Role[];
  cgroup: readonly Role[];
  ipc: readonly Role[];
  uts: readonly Role[];
  /** The host's network when the default is none. */
  network: readonly Role[];
  /** A writable root when the default is read-only. */
  readOnlyRoot: readonly Role[];
}

export interface JobPolicy {
  /** Defaults in force (the Worker applies them too; here to tell an opt-out from a no-op). */
  defaults: { namespaces: Record<NamespaceName, boolean>; network: 'host' | 'none'; readOnlyRoot: boolean };
  optOuts: IsolationOptOuts;
  /** Roles that may bind host paths into a job. */
  mounts: readonly Role[];
  /** Identity (certificate CN) → the host user its jobs run as; others get dynamic uids. */
  identityUsers: ReadonlyMap<string, JobUserSpec>;
}

const ADMINS: readonly Role[] = ['admin'];

export const DEFAULT_JOB_POLICY: JobPolicy = {
  defaults: { namespaces: { pid: true, mount: true, cgroup: true, ipc: true, uts: true }, network: 'host', readOnlyRoot: false },
  optOuts: { pid: ADMINS, mount: ADMINS, cgroup: ADMINS, ipc: ADMINS, uts: ADMINS, network: ADMINS, readOnlyRoot: ADMINS },
  mounts: ADMINS,
  identityUsers: new Map(),
};

const NAMESPACE_FROM_PB = new Map<pb.Namespace, NamespaceName>([
  [pb.Namespace.NAMESPACE_PID, 'pid'],
  [pb.Namespace.NAMESPACE_MOUNT, 'mount'],
  [pb.Namespace.NAMESPACE_CGROUP, 'cgroup'],
  [pb.Namespace.NAMESPACE_IPC, 'ipc'],
  [pb.Namespace.NAMESPACE_UTS, 'uts'],
]);

function allowed(identity: PeerIdentity, roles: readonly Role[]): boolean {
  return identity.roles.some((role) => roles.includes(role));
}

function refuse(identity: PeerIdentity, what: string, setting: string, roles: readonly Role[]): JobworkerError {
  const has = identity.roles.length === 0 ? 'no role' : `role ${identity.roles.join(', ')}`;
  const who = roles.length === 0 ? 'no role' : roles.join(', ');
  return new JobworkerError('permission-denied', `${identity.name} (${has}) may not ${what} (the daemon's config, ${setting}, allows: ${who})`);
}

/** Who the job runs as: an admin's choice, else the caller's mapped user, else a dynamic uid. */
export function userChoiceOf(request: pb.StartJobRequest, identity: PeerIdentity, policy: JobPolicy): JobUserChoice {
  const asked = request.user !== undefined || request.userName !== '' || request.groupName !== '';
  if (asked && !identity.roles.includes('admin')) {
    throw new JobworkerError('permission-denied', `${identity.name} may not choose the user a job runs as (admins only)`);
  }
  if (request.user !== undefined) {
    if (request.userName !== '') throw new ValidationError('user_name', 'give user or user_name, not both');
    if (request.groupName !== '') throw new ValidationError('group_name', 'only with user_name');
    if (request.user.name !== '') throw new ValidationError('user.name', 'is set by the daemon in a Job; ask by name with user_name');
    if (request.user.kind !== pb.UserKind.USER_KIND_UNSPECIFIED) throw new ValidationError('user.kind', 'is set by the daemon in a Job');
    if (request.user.uid !== 0 && request.user.gid === 0) {
      // Unset and 0 are one on the wire: a client that gave a uid alone would get root's group.
      throw new ValidationError('user.gid', `give the primary group of uid ${request.user.uid} too (0, root's group, cannot be told from unset here; ask for it by name with user_name and group_name)`);
    }
    return { uid: request.user.uid, gid: request.user.gid, groups: request.user.groups, kind: 'requested' };
  }
  if (request.userName !== '') {
    const spec: JobUserSpec = { name: request.userName, kind: 'requested' };
    if (request.groupName !== '') {
      spec.group = request.groupName;
      spec.groups = [];
    }
    return spec;
  }
  if (request.groupName !== '') throw new ValidationError('group_name', 'only with user_name');
  return policy.identityUsers.get(identity.name) ?? 'dynamic';
}

function mountFromPb(mount: pb.Mount): BindMount {
  return { source: mount.source, target: mount.target, readOnly: mount.readOnly };
}

/** The job's isolation as asked, checked against what the caller may ask for. */
export function isolationSpecOf(request: pb.StartJobRequest, identity: PeerIdentity, policy: JobPolicy): JobIsolationSpec {
  const spec: JobIsolationSpec = {};
  if (request.hostNamespaces.length > 0) {
    const namespaces: Partial<Record<NamespaceName, boolean>> = {};
    for (const [i, value] of request.hostNamespaces.entries()) {
      const name = NAMESPACE_FROM_PB.get(value);
      if (name === undefined) {
        const hint = value === pb.Namespace.NAMESPACE_NETWORK ? ' (choose the network with network)' : '';
        throw new ValidationError(`host_namespaces[${i}]`, `${value} is not a namespace a job can share with the host${hint}; one of ${NAMESPACE_NAMES.join(', ')}`);
      }
      if (policy.defaults.namespaces[name] && !allowed(identity, policy.optOuts[name])) {
        throw refuse(identity, `run a job in the host's ${name} namespace`, `isolation.optOuts.${name}`, policy.optOuts[name]);
      }
      namespaces[name] = false;
    }
    spec.namespaces = namespaces;
  }
  if (request.network === pb.Network.NETWORK_HOST) {
    if (policy.defaults.network === 'none' && !allowed(identity, policy.optOuts.network)) {
      throw refuse(identity, 'run a job in the host\'s network', 'isolation.optOuts.network', policy.optOuts.network);
    }
    spec.network = 'host';
  } else if (request.network === pb.Network.NETWORK_NONE) {
    spec.network = 'none';
  } else if (request.network !== pb.Network.NETWORK_UNSPECIFIED) {
    throw new ValidationError('network', `${request.network} is not a network`);
  }
  if (request.readOnlyRoot !== undefined) {
    if (!request.readOnlyRoot && policy.defaults.readOnlyRoot && !allowed(identity, policy.optOuts.readOnlyRoot)) {
      throw refuse(identity, 'run a job with a writable root', 'isolation.optOuts.readOnlyRoot', policy.optOuts.readOnlyRoot);
    }
    spec.readOnlyRoot = request.readOnlyRoot;
  }
  if (request.mounts.length > 0) {
    if (!allowed(identity, policy.mounts)) throw refuse(identity, 'bind host paths into a job', 'isolation.mounts', policy.mounts);
    spec.mounts = request.mounts.map(mountFromPb);
  }
  return spec;
}
