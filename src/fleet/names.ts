// Names in NATS: pools, hosts, and the streams, subjects and buckets made from them. Every name that
// reaches a subject or a key is checked here first, so no token can smuggle '.', '*' or '>' in.
import { ValidationError } from '../errors';

/** A pool name: it becomes part of a stream name and a subject. */
const POOL_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** A host name (fleet.host): a KV key and what people read in listings. */
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkPoolName(field: string, name: string): string {
  if (!POOL_NAME.test(name)) throw new ValidationError(field, `must be 1-32 of a-z, 0-9 and '-', starting with a letter or digit, got ${JSON.stringify(name.slice(0, 64))}`);
  return name;
}

export function checkHostName(field: string, name: string): string {
  if (!HOST_NAME.test(name)) throw new ValidationError(field, `must be 1-64 of letters, digits, '.', '_' and '-', starting with a letter or digit, got ${JSON.stringify(name.slice(0, 80))}`);
  return name;
}

export function isPoolName(name: string): boolean {
  return POOL_NAME.test(name);
}

export function isHostName(name: string): boolean {
  return HOST_NAME.test(name);
}

/** The JetStream work-queue stream of a pool, and the subject its submissions go to. */
export function poolStream(pool: string): string {
  return `JOBWORKER_POOL_${pool}`;
}

export function poolSubject(pool: string): string {
  return `jobworker.pool.${pool}`;
}

/** The one durable pull consumer every daemon serving a pool fetches from (a shared work queue). */
export const RUNNERS_CONSUMER = 'runners';
/** Pool jobs' records, keyed by job id. */
export const JOBS_BUCKET = 'jobworker_jobs';
/** Heartbeats, keyed by host name; the bucket's max age makes a silent host's key vanish. */
export const HOSTS_BUCKET = 'jobworker_hosts';
