// The handlers' work for pool jobs (docs/fleet.md): StartJob with a pool queues the job through the
// fleet; StopJob of a queued one takes it out of the queue; StreamLogs and StopJob of one that another
// daemon runs answer "ask that daemon" (./pool-redirect.ts); RemoveJob deletes the record.
import type { OutgoingStreamLogsResponse } from '../api/stream-logs-codec';
import { JobworkerError, ValidationError } from '../errors';
import { checkPoolName, MAX_RETRIES, type Fleet, type PoolJob } from '../fleet';
import type * as pb from '../gen/jobworker/v1/jobworker';
import type { LocatedJob } from './job-sources';
import { limitsFromPb, poolJobToPb } from './convert';
import type { PeerIdentity } from './peer-identity';
import { RunnerElsewhereError } from './pool-redirect';
import type { StreamWrite } from './stream-writer';
import { checkJobId } from './validation';
import { WakeUp } from './wake-up';

export async function submitPoolJob(fleet: Fleet | null, request: pb.StartJobRequest, identity: PeerIdentity): Promise<pb.Job> {
  if (request.pool === '') throw new ValidationError(request.retries !== 0 ? 'retries' : 'job_id', 'is only for pool jobs: give pool too');
  checkPoolName('pool', request.pool);
  if (request.maxRuntimeMs !== undefined) throw new ValidationError('max_runtime_ms', 'is not supported for pool jobs yet');
  // A name is unique per owner on one daemon; a pool job may run on any: not carried (yet).
  if (request.name !== '') throw new ValidationError('name', 'is not supported for pool jobs yet');
  if (Object.keys(request.labels).length > 0) throw new ValidationError('labels', 'are not supported for pool jobs yet');
  if (request.retries > MAX_RETRIES) throw new ValidationError('retries', `must be at most ${MAX_RETRIES}`);
  if (request.jobId !== '') checkJobId('job_id', request.jobId);
  if (fleet === null) throw new JobworkerError('failed-precondition', 'this daemon is in no fleet (its config has no "fleet" section): start the job without a pool, or ask a daemon of the fleet');
  const job = await fleet.submit({
    ...(request.jobId === '' ? {} : { id: request.jobId }),
    pool: request.pool,
    retries: request.retries,
    owner: identity.name,
    spec: {
      command: request.command,
      args: request.args,
      env: Object.keys(request.env).length === 0 ? null : request.env,
      cwd: request.cwd === '' ? null : request.cwd,
      limits: limitsFromPb(request.limits),
      user: request.user === undefined ? null : { uid: request.user.uid, gid: request.user.gid, groups: request.user.groups },
    },
  });
  return poolJobToPb(job);
}

/** StopJob of a pool job that does not run here: out of the queue if queued, else ask its runner. */
export async function stopPoolJob(fleet: Fleet, job: PoolJob, identity: PeerIdentity): Promise<pb.StopJobResponse> {
  if (job.status.state === 'queued') {
    const stopped = await fleet.stopQueued(job.status.id, identity.name);
    if (stopped !== null) return { job: poolJobToPb(stopped.job), alreadyFinished: stopped.alreadyFinished };
    job = fleet.get(job.status.id) ?? job; // claimed meanwhile
  }
  if (isOver(job)) return { job: poolJobToPb(job), alreadyFinished: true };
  throw new RunnerElsewhereError(job);
}

/**
 * StreamLogs of a pool job that does not run here. Queued: with follow, wait until a daemon claims
 * it, then point there; without, the (empty) output so far and its status. Claimed: its runner.
 */
export async function streamPoolJob(
  fleet: Fleet,
  job: PoolJob,
  request: pb.StreamLogsRequest,
  write: StreamWrite<OutgoingStreamLogsResponse>,
  signal: AbortSignal,
): Promise<void> {
  if (job.status.state === 'queued') {
    if (!request.follow) {
      await write({ chunks: [], finalStatus: poolJobToPb(job) });
      return;
    }
    job = await claimedOrOver(fleet, job.status.id, signal);
    if (job.status.state === 'stopped' && job.placement.runnerHost === null) {
      await write({ chunks: [], finalStatus: poolJobToPb(job) }); // stopped while queued: it never ran
      return;
    }
  }
  throw new RunnerElsewhereError(job);
}

export async function removePoolJob(fleet: Fleet, located: LocatedJob): Promise<void> {
  const job = located.where === 'pool' ? located.pool : located.pool!;
  if (!isOver(job)) throw new JobworkerError('failed-precondition', `job ${job.status.id} is ${job.status.state}; stop it before removing it`);
  await fleet.remove(job.status.id);
}

function isOver(job: PoolJob): boolean {
  return ['exited', 'failed', 'stopped', 'lost'].includes(job.status.state);
}

/** Waits until the job is no longer queued (or is gone: NOT_FOUND). */
async function claimedOrOver(fleet: Fleet, id: string, signal: AbortSignal): Promise<PoolJob> {
  const changed = new WakeUp();
  const unsubscribe = fleet.subscribe((job) => {
    if (job.status.id === id) changed.wake();
  });
  try {
    for (;;) {
      const job = fleet.get(id);
      if (job === undefined) throw new JobworkerError('not-found', `job ${id} not found`);
      if (job.status.state !== 'queued') return job;
      await changed.wait(signal);
      signal.throwIfAborted();
    }
  } finally {
    unsubscribe();
  }
}
