// Where a job is: this daemon's Worker, or (with a fleet) a pool job's record, which any daemon
// reads. A pool job that runs (or ran) here is answered from the Worker — live stats, its log —
// with its placement from the record; one that runs elsewhere from its record alone.
import type { Fleet, PoolJob, PoolJobState } from '../fleet';
import type * as pb from '../gen/jobworker/v1/jobworker';
import { isFinal, type Job, type JobStatus, type Worker } from '../worker';
import { jobToPb, poolJobToPb } from './convert';

const FINAL: readonly PoolJobState[] = ['exited', 'failed', 'stopped', 'lost'];

export type LocatedJob = { where: 'here'; job: Job; pool: PoolJob | undefined } | { where: 'pool'; pool: PoolJob };

/**
 * A local job is a pool job's run here only if both have one owner: the runner starts it as the
 * pool job's owner, and refuses an id another identity's job has here. Different owners: two jobs
 * under one id (a client chose it on another host); `viewer` is answered the one it owns, anyone
 * else (an admin) the local one.
 */
function isRunOf(local: Job, pool: PoolJob): boolean {
  return local.owner === pool.status.owner;
}

export function locateJob(worker: Worker, fleet: Fleet | null, id: string, viewer?: string): LocatedJob | undefined {
  let local = worker.get(id);
  let pool = fleet?.get(id);
  if (local !== undefined && pool !== undefined && !isRunOf(local, pool)) {
    if (viewer === pool.status.owner) local = undefined;
    else pool = undefined;
  }
  if (pool === undefined) return local === undefined ? undefined : { where: 'here', job: local, pool };
  // Runs here, or ran here and is over (this daemon has its log).
  const ranHere = pool.placement.runnerHost === fleet!.host && isFinal(local?.state ?? 'starting') && FINAL.includes(pool.status.state);
  if (local !== undefined && (pool.runsHere || ranHere)) {
    return { where: 'here', job: local, pool };
  }
  return { where: 'pool', pool };
}

export function ownerOf(located: LocatedJob): string {
  return located.where === 'here' ? located.job.owner : located.pool.status.owner;
}

export function idOf(located: LocatedJob): string {
  return located.where === 'here' ? located.job.id : located.pool.status.id;
}

/** A job as listings and watches need it. */
export interface ListedJob {
  id: string;
  owner: string;
  /** null: none (pool jobs never have one). */
  name: string | null;
  labels: Readonly<Record<string, string>>;
  state: PoolJobState;
  createdAt: Date;
  /** What its status costs to hold and to send, roughly (its strings: mostly argv); watchers bound their queues by it. */
  bytes(): number;
  toPb(): pb.Job;
}

function statusBytes(status: Pick<JobStatus, 'command' | 'cwd' | 'owner' | 'args' | 'name' | 'labels'>): number {
  let bytes = 256 + status.command.length + status.cwd.length + status.owner.length + (status.name?.length ?? 0);
  for (const arg of status.args) bytes += arg.length + 2;
  for (const [key, value] of Object.entries(status.labels)) bytes += key.length + value.length + 4;
  return bytes;
}

export interface JobSource {
  list(): ListedJob[];
  /** previousState null: a job seen for the first time. */
  subscribe(listener: (job: ListedJob, previousState: PoolJobState | null) => void): () => void;
}

function listedLocal(job: Job, pool: PoolJob | undefined): ListedJob {
  return { id: job.id, owner: job.owner, name: job.name, labels: job.labels, state: job.state, createdAt: job.createdAt, bytes: () => statusBytes(job.status()), toPb: () => jobToPb(job.status(), undefined, pool?.placement) };
}

function listedPool(pool: PoolJob): ListedJob {
  return { id: pool.status.id, owner: pool.status.owner, name: pool.status.name, labels: pool.status.labels, state: pool.status.state, createdAt: pool.status.createdAt, bytes: () => statusBytes(pool.status), toPb: () => poolJobToPb(pool) };
}

/** This daemon's own jobs (pool jobs are the fleet source's). */
export function workerSource(worker: Worker, fleet: Fleet | null): JobSource {
  const isPoolRun = (id: string, owner: string) => fleet?.get(id)?.status.owner === owner;
  return {
    list: () => worker.list().filter((job) => !isPoolRun(job.id, job.owner)).map((job) => listedLocal(job, undefined)),
    subscribe: (listener) =>
      worker.subscribe((event) => {
        if (isPoolRun(event.status.id, event.status.owner)) return;
        const status = event.status;
        listener({ id: status.id, owner: status.owner, name: status.name, labels: status.labels, state: status.state, createdAt: status.createdAt, bytes: () => statusBytes(status), toPb: () => jobToPb(status) }, event.previousState);
      }),
  };
}

/** Pool jobs, from their records (every daemon of the fleet sees the same). */
export function fleetSource(fleet: Fleet): JobSource {
  return {
    list: () => fleet.list().map(listedPool),
    subscribe: (listener) => fleet.subscribe((job, previousState) => listener(listedPool(job), previousState)),
  };
}
