// WatchJobs: the current status of every matching job the caller may see, then every change, until
// the client goes away (or, watching one job, until it is final).
//
// A watcher that reads slower than jobs change gets each job's LATEST state, not every step: the
// changes not yet written are kept per job (a new change of a job already waiting replaces its
// status and keeps the state the client last saw as `previous_state`). A slow watcher then costs at
// most one entry per job, and the status snapshots it holds are the ones the Worker made for every
// listener (shared, not copied). Jobs come and go, though (started, finished, removed), so pending
// entries are still bounded, at enqueue time, in count (MAX_PENDING_JOBS) and in the bytes of their
// specs (MAX_PENDING_BYTES): past either, the stream ends at once with RESOURCE_EXHAUSTED, even
// while a write waits for the client. (The cap used to be checked only between writes, so a client
// that stopped reading grew the queue without bound.)
import { JobworkerError } from '../errors';
import * as pb from '../gen/jobworker/v1/jobworker';
import { FINAL_STATES, type JobState, type JobStatus, type Worker } from '../worker';
import { canSeeJob } from './authz';
import type { StreamControl } from './call';
import { jobToPb, stateToPb } from './convert';
import type { PeerIdentity } from './peer-identity';
import { WakeUp } from './wake-up';

/** Jobs with a change not yet written, at most. */
export const MAX_PENDING_JOBS = 10_000;
/** Bytes of the pending statuses (mostly argv and env), at most. */
export const MAX_PENDING_BYTES = 16 << 20;

export interface WatchFilter {
  /** Empty: every job. */
  jobId: string;
  /** Empty: every state. */
  states: ReadonlySet<JobState>;
}

interface Pending {
  status: JobStatus;
  /** The state the client last saw (the first pending change's previous state). */
  previousState: JobState;
  bytes: number;
}

/** What a status costs to hold and to send, roughly: its strings. */
export function statusBytes(status: JobStatus): number {
  let bytes = 256 + status.command.length + status.cwd.length + status.owner.length;
  for (const arg of status.args) bytes += arg.length + 2;
  return bytes;
}

export async function watchJobs(
  worker: Worker,
  identity: PeerIdentity,
  filter: WatchFilter,
  control: StreamControl<pb.WatchJobsResponse>,
): Promise<void> {
  const { write, signal } = control;
  const matches = (status: { id: string; owner: string; state: JobState }) =>
    canSeeJob(identity, status.owner) &&
    (filter.jobId === '' || status.id === filter.jobId) &&
    (filter.states.size === 0 || filter.states.has(status.state));
  // Insertion order: jobs are written in the order of their first pending change.
  const pending = new Map<string, Pending>();
  let pendingBytes = 0;
  const changed = new WakeUp();
  const unsubscribe = worker.subscribe((event) => {
    if (!matches(event.status)) return;
    const bytes = statusBytes(event.status);
    const waiting = pending.get(event.status.id);
    if (waiting !== undefined) {
      pendingBytes += bytes - waiting.bytes;
      waiting.status = event.status;
      waiting.bytes = bytes;
    } else {
      pending.set(event.status.id, { status: event.status, previousState: event.previousState, bytes });
      pendingBytes += bytes;
    }
    if (pending.size > MAX_PENDING_JOBS || pendingBytes > MAX_PENDING_BYTES) {
      unsubscribe();
      pending.clear();
      control.end(new JobworkerError('resource-exhausted', `the client reads status changes too slowly: more than ${MAX_PENDING_JOBS} jobs or ${MAX_PENDING_BYTES >> 20} MiB of changes not yet read`));
    }
    changed.wake();
  });
  try {
    for (const job of worker.list()) {
      const status = job.status();
      if (matches(status)) await write({ job: jobToPb(status), previousState: pb.JobState.JOB_STATE_UNSPECIFIED });
    }
    for (;;) {
      for (const [id, change] of pending) {
        pending.delete(id);
        pendingBytes -= change.bytes;
        await write({ job: jobToPb(change.status), previousState: stateToPb(change.previousState) });
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
