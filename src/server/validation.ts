// Checks of request fields the Worker does not make itself (it validates job specs and limits):
// job ids, states, page sizes and the stop grace. Errors name the field as the proto does.
import { REQUEST_BOUNDS } from '../api/request-bounds';
import { ValidationError } from '../errors';
import type * as pb from '../gen/jobworker/v1/jobworker';
import { isJobId } from '../job-id';
import type { PoolJobState } from '../fleet';
import { stateFromPb } from './convert';

export function checkJobId(field: string, id: string): string {
  if (!isJobId(id)) throw new ValidationError(field, `must be a job id (a lower-case UUID), got ${JSON.stringify(id.slice(0, 64))}`);
  return id;
}

/** The states of a ListJobs or WatchJobs filter (empty: every state). */
export function statesFromPb(values: readonly pb.JobState[]): PoolJobState[] {
  return values.map((value, i) => {
    const state = stateFromPb(value);
    if (state === undefined) throw new ValidationError(`states[${i}]`, `${value} is not a job state`);
    return state;
  });
}

/** A ListJobs page size: 0 asks for the default. */
export function pageSizeOf(requested: number): number {
  const pageSize = requested === 0 ? REQUEST_BOUNDS.defaultPageSize : requested;
  if (pageSize > REQUEST_BOUNDS.maxPageSize) throw new ValidationError('page_size', `must be at most ${REQUEST_BOUNDS.maxPageSize}`);
  return pageSize;
}

export function checkGraceMs(graceMs: number | undefined): void {
  if (graceMs !== undefined && graceMs > REQUEST_BOUNDS.maxGraceMs) {
    throw new ValidationError('grace_ms', `must be at most ${REQUEST_BOUNDS.maxGraceMs}`);
  }
}

/** An identity named in a request: a certificate name's bounds. */
export function checkIdentity(field: string, identity: string): void {
  if (Buffer.byteLength(identity, 'utf8') > REQUEST_BOUNDS.maxIdentityBytes) {
    throw new ValidationError(field, `must be at most ${REQUEST_BOUNDS.maxIdentityBytes} bytes`);
  }
}
