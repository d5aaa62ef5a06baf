// The one error hierarchy. Every layer throws these; src/server maps `kind` to a gRPC status code
// and src/cli to an exit code. Messages are written for the person who made the request.

export type ErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'resource-exhausted'
  | 'unauthenticated'
  | 'permission-denied'
  | 'unavailable'
  | 'internal';

export class JobworkerError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A request or option that is wrong; `field` names it (e.g. `limits.memoryBytes`). `related` lists
 * other fields the reason mentions by name, so that a layer naming fields otherwise (the server's
 * proto names, job-cli's flags) can rename them there too. `kind` is invalid-argument unless the
 * value is fine but the host cannot honour it (failed-precondition).
 */
export class ValidationError extends JobworkerError {
  readonly related: readonly string[];

  constructor(
    readonly field: string,
    readonly reason: string,
    options: { related?: readonly string[]; kind?: ErrorKind; cause?: unknown } = {},
  ) {
    super(options.kind ?? 'invalid-argument', `${field}: ${reason}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.related = options.related ?? [];
  }
}

export class NotFoundError extends JobworkerError {
  constructor(message: string) {
    super('not-found', message);
  }
}

/** A system call failed; says what was being done, where, and the errno. */
export class SystemError extends JobworkerError {
  constructor(
    readonly operation: string,
    readonly path: string | undefined,
    readonly code: string,
    options?: { cause?: unknown; kind?: ErrorKind; detail?: string },
  ) {
    const where = path === undefined ? '' : ` ${path}`;
    const detail = options?.detail === undefined ? '' : `: ${options.detail}`;
    super(options?.kind ?? 'internal', `${operation}${where}: ${code}${detail}`, options);
  }
}

/** Errno names that mean the host ran out of something, not that jobworker has a bug. */
const EXHAUSTION_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE']);

/** What a full or read-only filesystem means for the request, said next to the errno. */
const HOST_STATE_DETAILS: Record<string, string> = {
  ENOSPC: 'no space left on the filesystem',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the filesystem is read-only',
};

/**
 * Wraps a Node fs/child error (with `.code`) as a SystemError naming the operation and path. A full
 * disk (ENOSPC, EDQUOT) or fd table (EMFILE, ENFILE) is `resource-exhausted` whatever `kind` says,
 * and a read-only filesystem (EROFS) `unavailable` unless `kind` says otherwise: they are the host's
 * state, not a bug.
 */
export function systemError(
  operation: string,
  path: string | undefined,
  cause: unknown,
  kind: ErrorKind = 'internal',
): SystemError {
  const code = errorCode(cause) ?? 'EUNKNOWN';
  // EROFS is `unavailable` unless the caller chose a kind (cgroupfs mounted read-only is a permission).
  const hostKind = EXHAUSTION_CODES.has(code) ? 'resource-exhausted' : code === 'EROFS' && kind === 'internal' ? 'unavailable' : undefined;
  const detail = HOST_STATE_DETAILS[code];
  return new SystemError(operation, path, code, { cause, kind: hostKind ?? kind, ...(detail === undefined ? {} : { detail }) });
}

export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The quotas an identity has (docs/security.md, "Tenancy"): kept by the daemon or by the kernel. */
export type IdentityQuota = 'maxRunningJobs' | 'logBytes' | 'memoryBytes' | 'pids' | 'cpu';

/**
 * A start refused because its identity is at one of its quotas. The message names the identity, the
 * quota (as configured: identityLimits.<quota>), its value, what is used, and how to free it.
 */
export class QuotaExceededError extends JobworkerError {
  constructor(
    readonly identity: string,
    readonly quota: IdentityQuota,
    readonly limit: number,
    readonly used: number,
    remedy: string,
  ) {
    super('resource-exhausted', `identity ${JSON.stringify(identity)} is at its ${quota} quota: ${used} of ${limit} (identityLimits.${quota}); ${remedy}`);
  }
}
