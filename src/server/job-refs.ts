// A job named in a request (job_id fields): by its id, or by its name. A name is looked up among the
// caller's own jobs first; a caller who may see other owners' jobs (admins) and has none of that
// name gets the one visible job that has it, and is asked for the id when several owners' jobs do.
// What the caller may not see is never told apart from what does not exist.
import { JobworkerError, NotFoundError, ValidationError } from '../errors';
import { isJobId, isJobName, JOB_NAME_RULE } from '../job-id';
import type { Worker } from '../worker';
import { canSeeJob } from './authz';
import type { PeerIdentity } from './peer-identity';

/** Jobs an ambiguous name's error lists, at most (one per owner: there may be many). */
const MAX_HOLDERS_SHOWN = 5;

/** The id of the job `ref` names (itself, if it is an id: whether that job exists is the caller's to check). */
export function jobIdOf(worker: Worker, identity: PeerIdentity, field: string, ref: string): string {
  if (isJobId(ref)) return ref;
  if (!isJobName(ref)) throw new ValidationError(field, `must be a job id (a lower-case UUID) or a job name (${JOB_NAME_RULE}), got ${JSON.stringify(ref.slice(0, 64))}`);
  const own = worker.named(identity.name, ref);
  if (own !== undefined) return own.id;
  const visible = worker.allNamed(ref).filter((job) => canSeeJob(identity, job.owner));
  if (visible.length === 1) return visible[0]!.id;
  if (visible.length === 0) throw new NotFoundError(`no job named ${ref}`);
  const holders = visible.slice(0, MAX_HOLDERS_SHOWN).map((job) => `${job.owner}'s ${job.id}`).join(', ') + (visible.length > MAX_HOLDERS_SHOWN ? ', …' : '');
  throw new JobworkerError('failed-precondition', `${visible.length} jobs of other owners are named ${ref} (${holders}) and you have none of that name: give the job's id`);
}
