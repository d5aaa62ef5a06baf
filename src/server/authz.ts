// Role-based access: which role may call which method (checked by the interceptor before any
// handler runs), and which jobs an identity may see (checked by the handlers: others' jobs answer
// NOT_FOUND, so ids cannot be probed). Pure; see docs/security.md for the matrix.
import { status as GrpcStatus } from '@grpc/grpc-js';

import type { Role } from '../pki/roles';
import type { CallRefusal, PeerIdentity } from './peer-identity';

export type Permission = 'read' | 'start' | 'stop' | 'remove' | 'service-info';

const SERVICE = '/jobworker.v1.JobService/';

/** Every method this server serves, and what it needs. Anything else answers UNIMPLEMENTED. */
export const METHOD_PERMISSIONS: Readonly<Record<string, Permission>> = {
  [`${SERVICE}StartJob`]: 'start',
  [`${SERVICE}StopJob`]: 'stop',
  [`${SERVICE}RemoveJob`]: 'remove',
  [`${SERVICE}GetJob`]: 'read',
  [`${SERVICE}ListJobs`]: 'read',
  [`${SERVICE}StreamLogs`]: 'read',
  [`${SERVICE}WatchJobs`]: 'read',
  [`${SERVICE}GetIdentityUsage`]: 'read',
  // Health checks and reflection: any verified client certificate that names an identity, with or
  // without a role (still mTLS: no anonymous access). They reveal nothing about jobs.
  '/grpc.health.v1.Health/Check': 'service-info',
  '/grpc.health.v1.Health/Watch': 'service-info',
  '/grpc.health.v1.Health/List': 'service-info',
  '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo': 'service-info',
  '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo': 'service-info',
};

export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  reader: ['read'],
  writer: ['read', 'start', 'stop', 'remove'],
  admin: ['read', 'start', 'stop', 'remove'],
};

/** What every authenticated identity may do, whatever its roles (none included). */
const ANY_IDENTITY: readonly Permission[] = ['service-info'];

export function permits(roles: readonly Role[], permission: Permission): boolean {
  return ANY_IDENTITY.includes(permission) || roles.some((role) => ROLE_PERMISSIONS[role].includes(permission));
}

/** The interceptor's check: null lets the call through. */
export function authorizeMethod(methodPath: string, identity: PeerIdentity): CallRefusal | null {
  const permission = METHOD_PERMISSIONS[methodPath];
  if (permission === undefined) return null; // grpc-js answers UNIMPLEMENTED
  if (permits(identity.roles, permission)) return null;
  const roles = identity.roles.length === 0 ? 'no role' : `role ${identity.roles.join(', ')}`;
  return {
    code: GrpcStatus.PERMISSION_DENIED,
    details: `${identity.name} (${roles}) may not call ${methodPath.slice(methodPath.lastIndexOf('/') + 1)}`,
  };
}

/** Admins see every job; everyone else only the jobs they own. */
export function canSeeJob(identity: PeerIdentity, owner: string): boolean {
  return identity.roles.includes('admin') || owner === identity.name;
}

export function seesAllJobs(identity: PeerIdentity): boolean {
  return identity.roles.includes('admin');
}

/**
 * Whose usage a GetIdentityUsage asking for `requested` ('' for the caller's own) may show: admins
 * anyone's, others their own; null when refused.
 */
export function usageVisibleTo(identity: PeerIdentity, requested: string): string | null {
  const wanted = requested === '' ? identity.name : requested;
  return wanted === identity.name || seesAllJobs(identity) ? wanted : null;
}

/** Whose jobs a listing shows: everyone's, one identity's, or none at all. */
export type JobVisibility = { kind: 'everyone' } | { kind: 'owner'; owner: string } | { kind: 'nothing' };

/**
 * What a ListJobs asking for `requestedOwner` ('' for no filter) may show: admins see anyone's; others
 * their own, and nothing when they ask for someone else's (they learn nothing, not even an error).
 */
export function listVisibility(identity: PeerIdentity, requestedOwner: string): JobVisibility {
  if (seesAllJobs(identity)) return requestedOwner === '' ? { kind: 'everyone' } : { kind: 'owner', owner: requestedOwner };
  if (requestedOwner !== '' && requestedOwner !== identity.name) return { kind: 'nothing' };
  return { kind: 'owner', owner: identity.name };
}
