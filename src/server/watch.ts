// WatchJobs: the current status of every matching job the caller may see, then every change, until
// the client goes away (or, watching one job, until it is final). Changes are queued while the
// client reads; one that falls 10,000 behind is ended with RESOURCE_EXHAUSTED.
import { JobworkerError } from '../errors';
import * as pb from '../gen/jobworker/v1/jobworker';
import { FINAL_STATES, type JobState, type Worker } from '../worker';
import { canSeeJob } from './authz';
import { jobToPb, stateToPb } from './convert';
import type { PeerIdentity } from './peer-identity';
import type { StreamWrite } from './stream-writer';
import { WakeUp } from './wake-up';

/** Changes queued for one watcher before it counts as too slow. */
const MAX_QUEUED_CHANGES = 10_000;

export interface WatchFilter {
  /** Empty: every job. */
  jobId: string;
  /** Empty: every state. */
  states: ReadonlySet<JobState>;
}

export async function watchJobs(
  worker: Worker,
  identity: PeerIdentity,
  filter: WatchFilter,
  write: StreamWrite<pb.WatchJobsResponse>,
  signal: AbortSignal,
): Promise<void> {
  const matches = (status: { id: string; owner: string; state: JobState }) =>
    canSeeJob(identity, status.owner) &&
    (filter.jobId === '' || status.id === filter.jobId) &&
    (filter.states.size === 0 || filter.states.has(status.state));
  const queue: pb.WatchJobsResponse[] = [];
  const changed = new WakeUp();
  const unsubscribe = worker.subscribe((event) => {
    if (!matches(event.status)) return;
    queue.push({ job: jobToPb(event.status), previousState: stateToPb(event.previousState) });
    changed.wake();
  });
  try {
    for (const job of worker.list()) {
      const status = job.status();
      if (matches(status)) await write({ job: jobToPb(status), previousState: pb.JobState.JOB_STATE_UNSPECIFIED });
    }
    for (;;) {
      while (queue.length > 0) {
        if (queue.length > MAX_QUEUED_CHANGES) throw new JobworkerError('resource-exhausted', 'the client reads status changes too slowly');
        await write(queue.shift()!);
      }
      // One job watched and it is final: nothing more will come.
      if (filter.jobId !== '' && FINAL_STATES.includes(worker.get(filter.jobId)?.state ?? 'lost')) return;
      await changed.wait(signal);
      signal.throwIfAborted();
    }
  } finally {
    unsubscribe();
  }
}
