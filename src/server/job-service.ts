// The JobService handlers: validate the request, check the caller may see the job, call the Worker
// (or, for pool jobs, the fleet: ./pool-jobs.ts), map the answer. The frame of each call (identity,
// availability, status, metrics, stream limits) is ./call.ts; the streams' own work is
// ./log-stream.ts and ./watch.ts, listing pages ./paging.ts, where a job is ./job-sources.ts.
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';

import type { OutgoingStreamLogsResponse } from '../api/stream-logs-codec';
import { JobworkerError, NotFoundError, QuotaExceededError, ValidationError } from '../errors';
import type { Fleet } from '../fleet';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { Logger } from '../logger';
import { checkJobName, isFinal, matchesLabels, parseLabelSelector, type Worker } from '../worker';
import { canSeeJob, listVisibility, usageVisibleTo } from './authz';
import { streamCall, unaryCall, type CallContext } from './call';
import { identityUsageToPb, jobToPb, limitsFromPb } from './convert';
import { isolationSpecOf, userChoiceOf, type JobPolicy } from './isolation-policy';
import type { FdBudget } from './fd-budget';
import { jobIdOf } from './job-refs';
import { fleetSource, idOf, locateJob, ownerOf, workerSource, type JobSource, type LocatedJob } from './job-sources';
import { streamJobLogs } from './log-stream';
import type { ServerMetrics } from './metrics';
import type { OwnerJobCounts } from './owner-jobs';
import { encodeListJobsResponse, pageOfJobs } from './paging';
import type { PeerIdentity } from './peer-identity';
import { removePoolJob, stopPoolJob, streamPoolJob, submitPoolJob } from './pool-jobs';
import type { RefusalLog } from './refusal-log';
import type { ScanLimiter } from './scan-limiter';
import type { SharedLogMessages } from './shared-log-messages';
import { statusOf } from './status';
import type { StreamRegistry } from './stream-registry';
import { checkGraceMs, checkIdentity, pageSizeOf, statesFromPb } from './validation';
import { watchJobs } from './watch';

export interface JobServiceDeps {
  worker: Worker;
  /** This daemon's part in a fleet (pool jobs); null: none configured, or not joined yet. */
  fleet(): Fleet | null;
  logger: Logger;
  metrics: ServerMetrics;
  /** True once shutdown began: new calls answer UNAVAILABLE. */
  shuttingDown(): boolean;
  /** Open streams: shutdown ends them; each identity may hold a bounded number. */
  streams: StreamRegistry;
  /** Who jobs run as and what of their isolation each role may change. */
  policy: JobPolicy;
  /** The daemon's fd budget: a start that would exceed it is refused. */
  fds: FdBudget;
  /** Running jobs per owner (the fd budget's per-identity share). */
  ownerJobs: OwnerJobCounts;
  /** Concurrent tail/since scans. */
  scans: ScanLimiter;
  /** Encoded log messages the followers of one job share. */
  sharedLogMessages: SharedLogMessages;
  /** Aggregated audit lines for what a client can trigger at will (failed starts). */
  refusals: RefusalLog;
  /** Jobs with a change a WatchJobs client has not read, at most (./watch.ts). */
  maxUnreadWatchJobs: number;
}

/**
 * The handlers. StreamLogs writes messages ChunkBatch has already encoded and ListJobs answers an
 * encoded page (the service's serializers pass them through), so their calls take those.
 */
export interface JobServiceHandlers extends Omit<pb.JobServiceServer, 'listJobs'> {
  streamLogs: (call: ServerWritableStream<pb.StreamLogsRequest, OutgoingStreamLogsResponse>) => void;
  /** Answers an encoded ListJobsResponse (./paging.ts). */
  listJobs: (call: ServerUnaryCall<pb.ListJobsRequest, Buffer>, callback: sendUnaryData<Buffer>) => void;
}

export function createJobService(deps: JobServiceDeps): JobServiceHandlers {
  const { worker, metrics, fds, ownerJobs, scans, sharedLogMessages, refusals } = deps;
  const audit = deps.logger.child({ audit: true });
  const context: CallContext = deps;
  const sources = (): JobSource[] => {
    const fleet = deps.fleet();
    return fleet === null ? [workerSource(worker, null)] : [workerSource(worker, fleet), fleetSource(fleet)];
  };
  /** The fleet, for a job found in it. */
  const fleetOf = (): Fleet => deps.fleet()!;

  /** The job (by id or name: ./job-refs.ts) if the caller may see it; NOT_FOUND otherwise, whether or not it exists. */
  function visibleJob(identity: PeerIdentity, field: string, ref: string): LocatedJob {
    const id = jobIdOf(worker, identity, field, ref);
    const located = locateJob(worker, deps.fleet(), id, identity.name);
    if (located === undefined || !canSeeJob(identity, ownerOf(located))) throw new NotFoundError(`job ${id} not found`);
    return located;
  }

  return {
    startJob: unaryCall(context, 'StartJob', async (request: pb.StartJobRequest, identity): Promise<pb.StartJobResponse> => {
      // Choosing the user is choosing privileges: only admins may; everyone else runs as the user
      // the config maps them to, or a dynamic uid. Less isolation than the defaults: as the config allows.
      const user = userChoiceOf(request, identity, deps.policy);
      const isolation = isolationSpecOf(request, identity, deps.policy);
      if (request.pool !== '' || request.retries !== 0 || request.jobId !== '') {
        // A pool job runs on whichever daemon claims it, as that daemon's default user and
        // isolation (or the uid an admin gave): names and isolation choices are not carried yet.
        if (request.userName !== '' || request.groupName !== '') throw new ValidationError('user_name', 'not for pool jobs (give user by number)');
        if (Object.keys(isolation).length > 0) throw new ValidationError('pool', 'pool jobs run with the runner daemon\'s default isolation: network, mounts, read_only_root and host_namespaces are not for pool jobs');
        // An id chosen by the client must not be another identity's job here: its owner would lose
        // sight of it behind the pool job's record (./job-sources.ts). Other hosts' runners check theirs.
        if (request.jobId !== '' && (worker.get(request.jobId)?.owner ?? identity.name) !== identity.name) {
          throw new JobworkerError('already-exists', `job id ${request.jobId} is already in use; choose another`);
        }
        const job = await submitPoolJob(deps.fleet(), request, identity).catch((error: unknown) => {
          metrics.starts.inc({ result: 'error' });
          refusals.note('pool job not queued', identity.name, { who: identity.name, action: 'start', pool: request.pool, command: request.command.slice(0, 256), result: statusOf(error).details });
          throw error;
        });
        metrics.starts.inc({ result: 'ok' });
        audit.info('pool job queued', { who: identity.name, action: 'start', job: job.id, pool: request.pool, command: request.command, result: 'ok' });
        return { job };
      }
      let startSettled: (() => void) | undefined;
      try {
        // Checked and counted in one turn: concurrent starts cannot both fit (./owner-jobs.ts).
        fds.check('job', { name: identity.name, holding: ownerJobs.running(identity.name) });
        startSettled = ownerJobs.starting(identity.name);
        const job = await worker.start(
          {
            command: request.command,
            args: request.args,
            env: Object.keys(request.env).length === 0 ? undefined : request.env,
            cwd: request.cwd === '' ? undefined : request.cwd,
            limits: limitsFromPb(request.limits),
            owner: identity.name,
            user,
            isolation,
            ...(request.maxRuntimeMs === undefined ? {} : { maxRuntimeMs: request.maxRuntimeMs }),
          },
          { ...(request.name === '' ? {} : { name: request.name }), labels: request.labels },
        );
        startSettled();
        metrics.starts.inc({ result: 'ok' });
        audit.info('job started', { who: identity.name, action: 'start', job: job.id, ...(job.name === null ? {} : { name: job.name }), command: request.command, result: 'ok' });
        return { job: jobToPb(job.status()) };
      } catch (error) {
        startSettled?.();
        metrics.starts.inc({ result: 'error' });
        if (error instanceof QuotaExceededError) metrics.quotaRefusals.inc({ quota: error.quota });
        // A writer can fail starts in a loop: aggregated per identity (./refusal-log.ts).
        refusals.note('job not started', identity.name, { who: identity.name, action: 'start', command: request.command.slice(0, 256), result: statusOf(error).details });
        throw error;
      }
    }),

    stopJob: unaryCall(context, 'StopJob', async (request: pb.StopJobRequest, identity): Promise<pb.StopJobResponse> => {
      const located = visibleJob(identity, 'job_id', request.jobId);
      const signal = request.signal === '' ? 'SIGTERM' : request.signal; // the Worker checks the name
      checkGraceMs(request.graceMs);
      if (located.where === 'pool') {
        const answer = await stopPoolJob(fleetOf(), located.pool, identity);
        audit.info('pool job stopped', { who: identity.name, action: 'stop', job: located.pool.status.id, result: answer.alreadyFinished ? 'already finished' : 'ok' });
        return answer;
      }
      const { job, pool } = located;
      try {
        const result = await job.stop({ signal, graceMs: request.graceMs, by: identity.name });
        metrics.stops.inc({ result: result.alreadyFinished ? 'already-finished' : 'ok' });
        audit.info('job stopped', { who: identity.name, action: 'stop', job: job.id, signal, result: result.alreadyFinished ? 'already finished' : 'ok' });
        return { job: jobToPb(result.status, undefined, pool?.placement), alreadyFinished: result.alreadyFinished };
      } catch (error) {
        metrics.stops.inc({ result: 'error' });
        audit.info('job not stopped', { who: identity.name, action: 'stop', job: job.id, result: statusOf(error).details });
        throw error;
      }
    }),

    removeJob: unaryCall(context, 'RemoveJob', async (request: pb.RemoveJobRequest, identity): Promise<pb.RemoveJobResponse> => {
      const located = visibleJob(identity, 'job_id', request.jobId);
      if (located.where === 'pool' || located.pool !== undefined) await removePoolJob(fleetOf(), located);
      else await worker.remove(located.job.id);
      audit.info('job removed', { who: identity.name, action: 'remove', job: idOf(located), result: 'ok' });
      return {};
    }),

    getJob: unaryCall(context, 'GetJob', async (request: pb.GetJobRequest, identity): Promise<pb.GetJobResponse> => {
      const located = visibleJob(identity, 'job_id', request.jobId);
      if (located.where === 'pool') return { job: jobToPb(located.pool.status, undefined, located.pool.placement) };
      const { job, pool } = located;
      const live = isFinal(job.state) ? undefined : await job.stats().catch(() => null);
      // Every argument, even those a big spec's record keeps only in its spec file.
      return { job: jobToPb(await job.detailedStatus(), live, pool?.placement) };
    }),

    listJobs: unaryCall(context, 'ListJobs', async (request: pb.ListJobsRequest, identity): Promise<Buffer> => {
      const states = statesFromPb(request.states);
      const pageSize = pageSizeOf(request.pageSize);
      const name = checkJobName('name', request.name);
      const selector = parseLabelSelector('label_selector', request.labelSelector);
      const visibility = listVisibility(identity, request.owner);
      const jobs =
        visibility.kind === 'nothing'
          ? []
          : sources()
              .flatMap((source) => source.list())
              .filter(
                (job) =>
                  (visibility.kind === 'everyone' || job.owner === visibility.owner) &&
                  (states.length === 0 || states.includes(job.state)) &&
                  (name === null || job.name === name) &&
                  matchesLabels(job.labels, selector),
              );
      // Bounded in bytes too (./paging.ts): each job is encoded once, in turn, and the answer is
      // assembled from those bytes (the service's serializer passes it through).
      const page = pageOfJobs(jobs, pageSize, request.pageToken, (job) => {
        const item = pb.Job.encode(job.toPb()).finish();
        return { item, bytes: item.length };
      });
      return encodeListJobsResponse(page.items, page.nextPageToken);
    }),

    getIdentityUsage: unaryCall(context, 'GetIdentityUsage', async (request: pb.GetIdentityUsageRequest, identity): Promise<pb.GetIdentityUsageResponse> => {
      checkIdentity('identity', request.identity);
      const whose = usageVisibleTo(identity, request.identity);
      if (whose === null) throw new JobworkerError('permission-denied', `${identity.name} may see only its own usage (admins: anyone's)`);
      return { usage: identityUsageToPb(await worker.identityUsage(whose)) };
    }),

    streamLogs: streamCall<pb.StreamLogsRequest, OutgoingStreamLogsResponse>(context, 'StreamLogs', async (request, identity, { write, signal }) => {
      const located = visibleJob(identity, 'job_id', request.jobId);
      if (located.where === 'pool') await streamPoolJob(fleetOf(), located.pool, request, write, signal);
      else await streamJobLogs(located.job, request, write, signal, { limiter: scans, identity: identity.name }, located.pool?.placement, sharedLogMessages);
    }),

    watchJobs: streamCall<pb.WatchJobsRequest, pb.WatchJobsResponse>(context, 'WatchJobs', async (request, identity, control) => {
      const states = new Set(statesFromPb(request.states));
      // A name is looked up once: the watch follows the job it names now.
      const jobId = request.jobId === '' ? '' : idOf(visibleJob(identity, 'job_id', request.jobId));
      await watchJobs(sources(), identity, { jobId, states }, control, { maxPendingJobs: deps.maxUnreadWatchJobs });
    }),
  };
}
