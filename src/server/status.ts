// Errors to gRPC statuses: one mapping for every handler, with messages a client can act on.
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';

import { RUNNER_ADDRESS_METADATA } from '../api/runner-redirect';

import { JobworkerError, ValidationError, errorCode, type ErrorKind } from '../errors';
import { CorruptLogError } from '../worker';
import { protoFieldPath } from './convert';
import { RunnerElsewhereError } from './pool-redirect';

const CODES: Record<ErrorKind, GrpcStatus> = {
  'invalid-argument': GrpcStatus.INVALID_ARGUMENT,
  'not-found': GrpcStatus.NOT_FOUND,
  'already-exists': GrpcStatus.ALREADY_EXISTS,
  'failed-precondition': GrpcStatus.FAILED_PRECONDITION,
  'resource-exhausted': GrpcStatus.RESOURCE_EXHAUSTED,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  'permission-denied': GrpcStatus.PERMISSION_DENIED,
  unavailable: GrpcStatus.UNAVAILABLE,
  internal: GrpcStatus.INTERNAL,
};

export interface StatusError {
  code: GrpcStatus;
  details: string;
  /** Trailing metadata to send with it (the runner's address of a pool job). */
  metadata?: Record<string, string>;
}

/**
 * The most of a status message sent. It travels in the HTTP/2 trailers (percent-encoded, so up to 3x
 * longer), and Node refuses a header block over 64 KiB: the call then never ends, and nor does any
 * later call on that connection. Messages that quote a request's own values (a PATH, a path) could
 * otherwise grow that large.
 */
export const MAX_DETAILS_BYTES = 4096;

/** The status for any error thrown by a handler. Unknown errors are INTERNAL with a generic message. */
export function statusOf(error: unknown): StatusError {
  const status = unboundedStatusOf(error);
  return { ...status, details: boundedDetails(status.details) };
}

/** `details`, cut to MAX_DETAILS_BYTES (at a character) with a note of its whole length. */
export function boundedDetails(details: string): string {
  const length = Buffer.byteLength(details);
  if (length <= MAX_DETAILS_BYTES) return details;
  const note = ` … (cut: ${length} bytes in all)`;
  // toString() of a cut buffer ends in U+FFFD where it split a character: drop that.
  const head = Buffer.from(details).subarray(0, MAX_DETAILS_BYTES - Buffer.byteLength(note)).toString().replace(/\uFFFD+$/, '');
  return `${head}${note}`;
}

function unboundedStatusOf(error: unknown): StatusError {
  if (error instanceof ValidationError) {
    const reason = error.related.reduce((text, field) => text.split(field).join(protoFieldPath(field)), error.reason);
    return { code: CODES[error.kind], details: `${protoFieldPath(error.field)}: ${reason}` };
  }
  if (error instanceof RunnerElsewhereError) return { code: GrpcStatus.FAILED_PRECONDITION, details: error.message, metadata: { [RUNNER_ADDRESS_METADATA]: error.address } };
  if (error instanceof JobworkerError) return { code: CODES[error.kind], details: error.message };
  if (error instanceof CorruptLogError) return { code: GrpcStatus.DATA_LOSS, details: error.message };
  // A raw fs error on a full fd table (a log opened for a stream): the host's state, not a bug.
  const code = errorCode(error);
  if (code === 'EMFILE' || code === 'ENFILE') return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: `the daemon has too many open files (${code}); try again later` };
  return { code: GrpcStatus.INTERNAL, details: 'internal error (see the daemon log)' };
}

export function serviceError(status: StatusError): Partial<ServiceError> {
  const error: Partial<ServiceError> = { code: status.code, details: status.details, message: status.details };
  if (status.metadata !== undefined) {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(status.metadata)) metadata.set(key, value);
    error.metadata = metadata;
  }
  return error;
}
