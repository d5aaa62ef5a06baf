// The JobService handlers: validate the request, check the caller may see the job, call the Worker,
// map the answer. The frame of each call (identity, availability, status, metrics, stream limits)
// is ./call.ts; the streams' own work is ./log-stream.ts and ./watch.ts, listing pages ./paging.ts.
import type { ServerWritableStream } from '@grpc/grpc-js';

import type { OutgoingStreamLogsResponse } from '../api/stream-logs-codec';
import { NotFoundError } from '../errors';
import type * as pb from '../gen/jobworker/v1/jobworker';
import type { Logger } from '../logger';
import { isFinal, type Job, type Worker } from '../worker';
import { canSeeJob, listVisibility } from './authz';
import { streamCall, unaryCall, type CallContext } from './call';
import { jobToPb, limitsFromPb } from './convert';
import { isolationSpecOf, userChoiceOf, type JobPolicy } from './isolation-policy';
import { streamJobLogs } from './log-stream';
import type { ServerMetrics } from './metrics';
import { pageOfJobs } from './paging';
import type { PeerIdentity } from './peer-identity';
import { statusOf } from './status';
import type { StreamRegistry } from './stream-registry';
import { checkGraceMs, checkJobId, pageSizeOf, statesFromPb } from './validation';
import { watchJobs } from './watch';

export interface JobServiceDeps {
  worker: Worker;
  logger: Logger;
  metrics: ServerMetrics;
  /** True once shutdown began: new calls answer UNAVAILABLE. */
  shuttingDown(): boolean;
  /** Open streams: shutdown ends them; each identity may hold a bounded number. */
  streams: StreamRegistry;
  /** Who jobs run as and what of their isolation each role may change. */
  policy: JobPolicy;
}

/**
 * The handlers. StreamLogs writes messages ChunkBatch has already encoded (the service's
 * serializer passes them through), so its call takes those as well as messages.
 */
export interface JobServiceHandlers extends pb.JobServiceServer {
  streamLogs: (call: ServerWritableStream<pb.StreamLogsRequest, OutgoingStreamLogsResponse>) => void;
}

export function createJobService(deps: JobServiceDeps): JobServiceHandlers {
  const { worker, metrics } = deps;
  const audit = deps.logger.child({ audit: true });
  const context: CallContext = deps;

  /** The job if the caller may see it; NOT_FOUND otherwise, whether or not it exists. */
  function visibleJob(identity: PeerIdentity, field: string, id: string): Job {
    checkJobId(field, id);
    const job = worker.get(id);
    if (job === undefined || !canSeeJob(identity, job.owner)) throw new NotFoundError(`job ${id} not found`);
    return job;
  }

  return {
    startJob: unaryCall(context, 'StartJob', async (request: pb.StartJobRequest, identity): Promise<pb.StartJobResponse> => {
      // Choosing the user is choosing privileges: only admins may; everyone else runs as the user
      // the config maps them to, or a dynamic uid. Less isolation than the defaults: as the config allows.
      const user = userChoiceOf(request, identity, deps.policy);
      const isolation = isolationSpecOf(request, identity, deps.policy);
      try {
        const job = await worker.start({
          command: request.command,
          args: request.args,
          env: Object.keys(request.env).length === 0 ? undefined : request.env,
          cwd: request.cwd === '' ? undefined : request.cwd,
          limits: limitsFromPb(request.limits),
          owner: identity.name,
          user,
          isolation,
        });
        metrics.starts.inc({ result: 'ok' });
        audit.info('job started', { who: identity.name, action: 'start', job: job.id, command: request.command, result: 'ok' });
        return { job: jobToPb(job.status()) };
      } catch (error) {
        metrics.starts.inc({ result: 'error' });
        audit.info('job not started', { who: identity.name, action: 'start', command: request.command.slice(0, 256), result: statusOf(error).details });
        throw error;
      }
    }),

    stopJob: unaryCall(context, 'StopJob', async (request: pb.StopJobRequest, identity): Promise<pb.StopJobResponse> => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      const signal = request.signal === '' ? 'SIGTERM' : request.signal; // the Worker checks the name
      checkGraceMs(request.graceMs);
      try {
        const result = await job.stop({ signal, graceMs: request.graceMs, by: identity.name });
        metrics.stops.inc({ result: result.alreadyFinished ? 'already-finished' : 'ok' });
        audit.info('job stopped', { who: identity.name, action: 'stop', job: job.id, signal, result: result.alreadyFinished ? 'already finished' : 'ok' });
        return { job: jobToPb(result.status), alreadyFinished: result.alreadyFinished };
      } catch (error) {
        metrics.stops.inc({ result: 'error' });
        audit.info('job not stopped', { who: identity.name, action: 'stop', job: job.id, result: statusOf(error).details });
        throw error;
      }
    }),

    removeJob: unaryCall(context, 'RemoveJob', async (request: pb.RemoveJobRequest, identity): Promise<pb.RemoveJobResponse> => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      await worker.remove(job.id);
      audit.info('job removed', { who: identity.name, action: 'remove', job: job.id, result: 'ok' });
      return {};
    }),

    getJob: unaryCall(context, 'GetJob', async (request: pb.GetJobRequest, identity): Promise<pb.GetJobResponse> => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      const live = isFinal(job.state) ? undefined : await job.stats().catch(() => null);
      return { job: jobToPb(job.status(), live) };
    }),

    listJobs: unaryCall(context, 'ListJobs', async (request: pb.ListJobsRequest, identity): Promise<pb.ListJobsResponse> => {
      const states = statesFromPb(request.states);
      const pageSize = pageSizeOf(request.pageSize);
      const visibility = listVisibility(identity, request.owner);
      const jobs =
        visibility.kind === 'nothing'
          ? []
          : worker.list({ ...(visibility.kind === 'owner' ? { owner: visibility.owner } : {}), ...(states.length === 0 ? {} : { states }) });
      const page = pageOfJobs(jobs, pageSize, request.pageToken);
      return { jobs: page.jobs.map((job) => jobToPb(job.status())), nextPageToken: page.nextPageToken };
    }),

    streamLogs: streamCall<pb.StreamLogsRequest, OutgoingStreamLogsResponse>(context, 'StreamLogs', async (request, identity, write, signal) => {
      await streamJobLogs(visibleJob(identity, 'job_id', request.jobId), request, write, signal);
    }),

    watchJobs: streamCall<pb.WatchJobsRequest, pb.WatchJobsResponse>(context, 'WatchJobs', async (request, identity, write, signal) => {
      const states = new Set(statesFromPb(request.states));
      if (request.jobId !== '') visibleJob(identity, 'job_id', request.jobId);
      await watchJobs(worker, identity, { jobId: request.jobId, states }, write, signal);
    }),
  };
}
