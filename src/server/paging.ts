// ListJobs pages: jobs oldest first (creation time, then id). A page token is the sort key of the
// last job sent, so pages stay right even when jobs are removed in between; a token the server did
// not issue is INVALID_ARGUMENT.
import { ValidationError } from '../errors';

/** What a listing sorts by. */
interface Listed {
  id: string;
  createdAt: Date;
}

export interface JobPage<J extends Listed> {
  jobs: J[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** The page of `jobs` (in any order) after `pageToken` (empty: the first page). */
export function pageOfJobs<J extends Listed>(jobs: readonly J[], pageSize: number, pageToken: string): JobPage<J> {
  const sorted = jobs
    .map((job) => ({ job, key: pageKey(job) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let start = 0;
  if (pageToken !== '') {
    const after = decodePageToken(pageToken);
    start = sorted.findIndex((entry) => entry.key > after);
    if (start < 0) start = sorted.length;
  }
  const page = sorted.slice(start, start + pageSize);
  const more = start + pageSize < sorted.length;
  return {
    jobs: page.map((entry) => entry.job),
    nextPageToken: more ? encodePageToken(page[page.length - 1]!.key) : '',
  };
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
