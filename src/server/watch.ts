// WatchJobs: the current status of every matching job the caller may see, then every change, until
// the client goes away (or, watching one job, until it is final). Jobs come from sources: this
// daemon's Worker, and with a fleet the pool jobs' records (./job-sources.ts).
//
// A watcher that reads slower than jobs change gets each job's LATEST state, not every step: the
// changes not yet written are kept per job (a new change of a job already waiting replaces its
// status and keeps the state the client last saw as `previous_state`). A slow watcher then costs at
// most one entry per job, and the status snapshots it holds are the ones its source made for every
// listener (shared, not copied). Jobs come and go, though (started, finished, removed), so pending
// entries are still bounded, at enqueue time, in count (`maxUnreadWatchJobs` in the config) and in
// the bytes of their statuses (MAX_PENDING_BYTES; a big spec's status carries only an argv preview): past either, the stream ends at once with RESOURCE_EXHAUSTED, even
// while a write waits for the client. (The cap used to be checked only between writes, so a client
// that stopped reading grew the queue without bound.)
import { JobworkerError } from '../errors';
import type { PoolJobState } from '../fleet';
import * as pb from '../gen/jobworker/v1/jobworker';
import { canSeeJob } from './authz';
import type { StreamControl } from './call';
import { stateToPb } from './convert';
import type { JobSource, ListedJob } from './job-sources';
import type { PeerIdentity } from './peer-identity';
import { WakeUp } from './wake-up';

/** Jobs with a change not yet written, at most, unless configured. */
export const DEFAULT_MAX_UNREAD_WATCH_JOBS = 10_000;
/** Bytes of the pending statuses (mostly argv and env), at most. */
export const MAX_PENDING_BYTES = 16 << 20;

const FINAL: readonly PoolJobState[] = ['exited', 'failed', 'stopped', 'lost'];

export interface WatchFilter {
  /** Empty: every job. */
  jobId: string;
  /** Empty: every state. */
  states: ReadonlySet<PoolJobState>;
}

interface Pending {
  job: ListedJob;
  /** The state the client last saw (the first pending change's previous state; null: none). */
  previousState: PoolJobState | null;
  bytes: number;
}

export async function watchJobs(
  sources: readonly JobSource[],
  identity: PeerIdentity,
  filter: WatchFilter,
  control: StreamControl<pb.WatchJobsResponse>,
  bounds: { maxPendingJobs: number },
): Promise<void> {
  const { write, signal } = control;
  const visible = (job: { id: string; owner: string }) => canSeeJob(identity, job.owner) && (filter.jobId === '' || job.id === filter.jobId);
  const matches = (job: { id: string; owner: string; state: PoolJobState }) => visible(job) && (filter.states.size === 0 || filter.states.has(job.state));
  let watchedState: PoolJobState | null = null;
  // Insertion order: jobs are written in the order of their first pending change.
  const pending = new Map<string, Pending>();
  let pendingBytes = 0;
  const changed = new WakeUp();
  const unsubscribe = (): void => {
    for (const stop of subscriptions) stop();
  };
  const subscriptions = sources.map((source) =>
    source.subscribe((job, previousState) => {
      if (visible(job)) watchedState = job.state;
      if (!matches(job)) return;
      const bytes = job.bytes();
      const waiting = pending.get(job.id);
      if (waiting !== undefined) {
        pendingBytes += bytes - waiting.bytes;
        waiting.job = job;
        waiting.bytes = bytes;
      } else {
        pending.set(job.id, { job, previousState, bytes });
        pendingBytes += bytes;
      }
      if (pending.size > bounds.maxPendingJobs || pendingBytes > MAX_PENDING_BYTES) {
        unsubscribe();
        pending.clear();
        control.end(new JobworkerError('resource-exhausted', `the client reads status changes too slowly: more than ${bounds.maxPendingJobs} jobs or ${MAX_PENDING_BYTES >> 20} MiB of changes not yet read`));
      }
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
      for (const [id, change] of pending) {
        pending.delete(id);
        pendingBytes -= change.bytes;
        const previousState = change.previousState === null ? pb.JobState.JOB_STATE_UNSPECIFIED : stateToPb(change.previousState);
        await write({ job: change.job.toPb(), previousState });
      }
      // One job watched and it is final: nothing more will come.
      if (filter.jobId !== '' && (watchedState === null || FINAL.includes(watchedState))) return;
      await changed.wait(signal);
      signal.throwIfAborted();
    }
  } finally {
    unsubscribe();
  }
}
