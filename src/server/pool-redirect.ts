// "Ask the daemon that runs it": the answer for StreamLogs and StopJob of a pool job that another
// daemon runs (docs/fleet.md). The client reads the address from the trailing metadata and asks
// there with the same certificate; RBAC is checked again there, as everywhere.
import { JobworkerError } from '../errors';
import type { PoolJob } from '../fleet';

export class RunnerElsewhereError extends JobworkerError {
  readonly address: string;

  constructor(job: PoolJob) {
    const address = job.placement.runnerAddress ?? '';
    super('failed-precondition', `job ${job.status.id} (pool ${job.placement.name}) runs on ${job.placement.runnerHost} at ${address}: ask that daemon (job-cli follows it)`);
    this.address = address;
  }
}
