// ListJobs pages: jobs oldest first (creation time, then id). A page token is the sort key of the
// last job sent, so pages stay right even when jobs are removed in between; a token the server did
// not issue is INVALID_ARGUMENT.
//
// A page is bounded in bytes as well as in count: one ListJobs(page_size=1000) over jobs with 1 MiB
// of argv each built a 1 GiB answer (RSS +1 GiB, every other client stalled for seconds). Jobs are
// rendered one at a time, and the page stops before the job that would take it past `maxBytes`
// (it always holds at least one job, so a client makes progress: a job's status is at most about
// 1 MiB, so a page stays inside every client's default 4 MiB receive limit); `next_page_token`
// then goes on from there, as for a page cut by its count.
import { BinaryWriter } from '@bufbuild/protobuf/wire';

import { ValidationError } from '../errors';

/** Encoded bytes of a ListJobs answer at most (plus one job when the first alone is bigger). */
export const MAX_LIST_RESPONSE_BYTES = 2 << 20;

/** What a listing sorts by. */
interface Listed {
  id: string;
  createdAt: Date;
}

export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** A job as it goes in a page, and its encoded size. */
export type RenderJob<J, T> = (job: J) => { item: T; bytes: number };

/**
 * The page of `jobs` (in any order) after `pageToken` (empty: the first page): at most `pageSize`
 * jobs and `maxBytes` of rendered ones (at least one).
 */
export function pageOfJobs<J extends Listed, T>(jobs: readonly J[], pageSize: number, pageToken: string, render: RenderJob<J, T>, maxBytes = MAX_LIST_RESPONSE_BYTES): Page<T> {
  const sorted = jobs
    .map((job) => ({ job, key: pageKey(job) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let start = 0;
  if (pageToken !== '') {
    const after = decodePageToken(pageToken);
    start = sorted.findIndex((entry) => entry.key > after);
    if (start < 0) start = sorted.length;
  }
  const items: T[] = [];
  let bytes = 0;
  let next = start;
  for (; next < sorted.length && items.length < pageSize; next++) {
    const rendered = render(sorted[next]!.job);
    if (items.length > 0 && bytes + rendered.bytes > maxBytes) break;
    items.push(rendered.item);
    bytes += rendered.bytes;
  }
  return {
    items,
    nextPageToken: next < sorted.length ? encodePageToken(sorted[next - 1]!.key) : '',
  };
}

/**
 * A ListJobs answer from jobs already encoded (each `jobworker.v1.Job`, measured while the page was
 * cut): the same bytes ListJobsResponse.encode makes (field 1, each job length-delimited; field 2 the
 * token), without encoding every job a second time. The service's serializer passes it through.
 */
export function encodeListJobsResponse(encodedJobs: readonly Uint8Array[], nextPageToken: string): Buffer {
  const writer = new BinaryWriter();
  for (const job of encodedJobs) writer.uint32(10).bytes(job);
  if (nextPageToken !== '') writer.uint32(18).string(nextPageToken);
  return Buffer.from(writer.finish());
}

/** Sort key of a job in listings: creation time, then id. */
function pageKey(job: Listed): string {
  return `${job.createdAt.toISOString()}/${job.id}`;
}

function encodePageToken(key: string): string {
  return Buffer.from(key).toString('base64url');
}

function decodePageToken(token: string): string {
  const key = Buffer.from(token, 'base64url').toString('utf8');
  if (!/^\d{4}-\d\d-\d\dT[\d:.]+Z\/[0-9a-f-]{36}$/.test(key)) {
    throw new ValidationError('page_token', 'is not a token this server issued');
  }
  return key;
}
