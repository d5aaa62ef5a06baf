// WatchJobs: the current status of every matching job the caller may see, then every change, until
// the client goes away (or, watching one job, until it is final). Jobs come from sources: this
// daemon's Worker, and with a fleet the pool jobs' records (./job-sources.ts). Changes are queued
// while the client reads; one that falls 10,000 behind is ended with RESOURCE_EXHAUSTED.
import { JobworkerError } from '../errors';
import type { PoolJobState } from '../fleet';
import * as pb from '../gen/jobworker/v1/jobworker';
import { canSeeJob } from './authz';
import type { JobSource } from './job-sources';
import type { PeerIdentity } from './peer-identity';
import { stateToPb } from './convert';
import type { StreamWrite } from './stream-writer';
import { WakeUp } from './wake-up';

/** Changes queued for one watcher before it counts as too slow. */
const MAX_QUEUED_CHANGES = 10_000;

const FINAL: readonly PoolJobState[] = ['exited', 'failed', 'stopped', 'lost'];

export interface WatchFilter {
  /** Empty: every job. */
  jobId: string;
  /** Empty: every state. */
  states: ReadonlySet<PoolJobState>;
}

export async function watchJobs(
  sources: readonly JobSource[],
  identity: PeerIdentity,
  filter: WatchFilter,
  write: StreamWrite<pb.WatchJobsResponse>,
  signal: AbortSignal,
): Promise<void> {
  const visible = (job: { id: string; owner: string }) => canSeeJob(identity, job.owner) && (filter.jobId === '' || job.id === filter.jobId);
  const matches = (job: { id: string; owner: string; state: PoolJobState }) => visible(job) && (filter.states.size === 0 || filter.states.has(job.state));
  let watchedState: PoolJobState | null = null;
  const queue: pb.WatchJobsResponse[] = [];
  const changed = new WakeUp();
  const unsubscribe = sources.map((source) =>
    source.subscribe((job, previousState) => {
      if (visible(job)) watchedState = job.state;
      if (!matches(job)) return;
      queue.push({ job: job.toPb(), previousState: previousState === null ? pb.JobState.JOB_STATE_UNSPECIFIED : stateToPb(previousState) });
      changed.wake();
    }),
  );
  try {
    for (const source of sources) {
      for (const job of source.list()) {
        if (visible(job)) watchedState = job.state;
        if (matches(job)) await write({ job: job.toPb(), previousState: pb.JobState.JOB_STATE_UNSPECIFIED });
      }
    }
    for (;;) {
      while (queue.length > 0) {
        if (queue.length > MAX_QUEUED_CHANGES) throw new JobworkerError('resource-exhausted', 'the client reads status changes too slowly');
        await write(queue.shift()!);
      }
      // One job watched and it is final: nothing more will come.
      if (filter.jobId !== '' && (watchedState === null || FINAL.includes(watchedState))) return;
      await changed.wait(signal);
      signal.throwIfAborted();
    }
  } finally {
    for (const stop of unsubscribe) stop();
  }
}
