// The JobService handlers: validate the request, check the caller may see the job, call the
// Worker, map the answer. Authentication and the role check already ran in the interceptor.
import { setImmediate as nextTurn } from 'node:timers/promises';

import {
  status as GrpcStatus,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';

import { JobworkerError, NotFoundError, ValidationError } from '../errors';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { LogRecord } from '../logs/reader';
import type { Logger } from '../logger';
import { signalNumber } from '../native';
import { FINAL_STATES, isFinal, type Job, type JobState, type Worker } from '../worker';
import { canSeeJob, seesAllJobs } from './authz';
import { jobToPb, limitsFromPb, stateFromPb, stateToPb, streamToPb } from './convert';
import { ChunkBatch } from '../api/stream-logs-codec';
import { decoded } from './decoding';
import type { ServerMetrics } from './metrics';
import { peerIdentityOf, type PeerIdentity } from './peer-identity';
import { serviceError, statusOf } from './status';

export const REQUEST_BOUNDS = {
  maxGraceMs: 3_600_000,
  maxPageSize: 1000,
  defaultPageSize: 100,
  maxTailLines: 100_000,
  /** A StreamLogs message carries at most this much output. */
  maxMessageBytes: 256 << 10,
  /** Messages of one stream handed to grpc-js and not yet flushed: the memory a slow client costs. */
  maxMessagesInFlight: 4,
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface JobServiceDeps {
  worker: Worker;
  logger: Logger;
  metrics: ServerMetrics;
  /** True once shutdown began: new calls answer UNAVAILABLE. */
  shuttingDown(): boolean;
  /** Streams register here so shutdown can end them. */
  streams: Set<AbortController>;
  /**
   * Open streams (StreamLogs + WatchJobs) one identity may hold: each costs up to ~2 MiB when its
   * client stops reading (the client's 1 MiB HTTP/2 window plus what is in flight here).
   */
  maxStreamsPerIdentity: number;
}

function checkJobId(field: string, id: string): string {
  if (!UUID.test(id)) throw new ValidationError(field, `must be a job id (a lower-case UUID), got ${JSON.stringify(id.slice(0, 64))}`);
  return id;
}

export function createJobService(deps: JobServiceDeps): pb.JobServiceServer {
  const { worker, logger, metrics } = deps;
  const audit = logger.child({ audit: true });
  const streamsByIdentity = new Map<string, number>();

  function checkAvailable(): void {
    if (deps.shuttingDown()) throw new JobworkerError('unavailable', 'the daemon is shutting down');
  }

  /** The job if the caller may see it; NOT_FOUND otherwise, whether or not it exists. */
  function visibleJob(identity: PeerIdentity, field: string, id: string): Job {
    checkJobId(field, id);
    const job = worker.get(id);
    if (job === undefined || !canSeeJob(identity, job.owner)) throw new NotFoundError(`job ${id} not found`);
    return job;
  }

  /** Runs a unary handler body, answering its result or its error as a status. */
  function unary<Req, Res>(method: string, body: (request: Req, identity: PeerIdentity) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      let identity: PeerIdentity;
      void (async () => {
        identity = peerIdentityOf(call);
        checkAvailable();
        return body(decoded(call.request), identity);
      })().then(
        (response) => {
          metrics.requests.inc({ method, code: 'OK' });
          callback(null, response);
        },
        (error: unknown) => {
          const status = statusOf(error);
          if (status.code === GrpcStatus.INTERNAL) logger.error('request failed', { method, error: String(error) });
          metrics.requests.inc({ method, code: GrpcStatus[status.code] });
          callback(serviceError(status), null);
        },
      );
    };
  }

  return {
    startJob: unary<pb.StartJobRequest, pb.StartJobResponse>('StartJob', async (request, identity) => {
      // Choosing the user is choosing privileges: only admins may; everyone else gets the default.
      if (request.user !== undefined && !seesAllJobs(identity)) {
        throw new JobworkerError('permission-denied', `${identity.name} may not choose the user a job runs as (admins only)`);
      }
      try {
        const job = await worker.start({
          command: request.command,
          args: request.args,
          env: Object.keys(request.env).length === 0 ? undefined : request.env,
          cwd: request.cwd === '' ? undefined : request.cwd,
          limits: limitsFromPb(request.limits),
          owner: identity.name,
          ...(request.user === undefined ? {} : { user: { uid: request.user.uid, gid: request.user.gid, groups: request.user.groups } }),
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

    stopJob: unary<pb.StopJobRequest, pb.StopJobResponse>('StopJob', async (request, identity) => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      const signal = (request.signal === '' ? 'SIGTERM' : request.signal) as NodeJS.Signals;
      try {
        signalNumber(signal);
      } catch {
        throw new ValidationError('signal', `unknown signal ${JSON.stringify(request.signal.slice(0, 32))} (use a name like SIGTERM)`);
      }
      if (request.graceMs !== undefined && request.graceMs > REQUEST_BOUNDS.maxGraceMs) {
        throw new ValidationError('grace_ms', `must be at most ${REQUEST_BOUNDS.maxGraceMs}`);
      }
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

    removeJob: unary<pb.RemoveJobRequest, pb.RemoveJobResponse>('RemoveJob', async (request, identity) => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      await worker.remove(job.id);
      audit.info('job removed', { who: identity.name, action: 'remove', job: job.id, result: 'ok' });
      return {};
    }),

    getJob: unary<pb.GetJobRequest, pb.GetJobResponse>('GetJob', async (request, identity) => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      const live = isFinal(job.state) ? undefined : await job.stats().catch(() => null);
      return { job: jobToPb(job.status(), live) };
    }),

    listJobs: unary<pb.ListJobsRequest, pb.ListJobsResponse>('ListJobs', async (request, identity) => {
      const states = request.states.map((value, i) => {
        const state = stateFromPb(value);
        if (state === undefined) throw new ValidationError(`states[${i}]`, `${value} is not a job state`);
        return state;
      });
      const pageSize = request.pageSize === 0 ? REQUEST_BOUNDS.defaultPageSize : request.pageSize;
      if (pageSize > REQUEST_BOUNDS.maxPageSize) throw new ValidationError('page_size', `must be at most ${REQUEST_BOUNDS.maxPageSize}`);
      let owner: string | undefined = identity.name;
      if (seesAllJobs(identity)) owner = request.owner === '' ? undefined : request.owner;
      else if (request.owner !== '' && request.owner !== identity.name) owner = '\0'; // sees nothing, learns nothing
      const jobs = worker
        .list({ owner, states: states.length === 0 ? undefined : states })
        .map((job) => ({ job, key: pageKey(job) }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      // Jobs are listed oldest first; a token is the (creation time, id) of the last one sent, so
      // pages stay right even when jobs are removed in between.
      let start = 0;
      if (request.pageToken !== '') {
        const after = decodePageToken(request.pageToken);
        start = jobs.findIndex((entry) => entry.key > after);
        if (start < 0) start = jobs.length;
      }
      const page = jobs.slice(start, start + pageSize);
      const more = start + pageSize < jobs.length;
      return {
        jobs: page.map((entry) => jobToPb(entry.job.status())),
        nextPageToken: more ? encodePageToken(page[page.length - 1]!.key) : '',
      };
    }),

    streamLogs: (call: ServerWritableStream<pb.StreamLogsRequest, pb.StreamLogsResponse>): void => {
      void streamLogs(call);
    },

    watchJobs: (call: ServerWritableStream<pb.WatchJobsRequest, pb.WatchJobsResponse>): void => {
      void watchJobs(call);
    },
  };

  /** Common frame of the two streams: identity, availability, abort on cancel or shutdown, status. */
  async function serveStream<Req, Res>(
    rpc: 'StreamLogs' | 'WatchJobs',
    call: ServerWritableStream<Req, Res>,
    body: (request: Req, identity: PeerIdentity, signal: AbortSignal) => Promise<void>,
  ): Promise<void> {
    const abort = new AbortController();
    const onCancel = () => abort.abort(new JobworkerError('unavailable', 'the client went away'));
    call.on('cancelled', onCancel);
    call.on('error', onCancel);
    deps.streams.add(abort);
    metrics.activeStreams.inc({ rpc });
    let counted: string | undefined;
    try {
      const identity = peerIdentityOf(call);
      checkAvailable();
      const open = streamsByIdentity.get(identity.name) ?? 0;
      if (open >= deps.maxStreamsPerIdentity) {
        throw new JobworkerError('resource-exhausted', `${identity.name} has ${open} streams open, the limit is ${deps.maxStreamsPerIdentity}`);
      }
      streamsByIdentity.set(identity.name, open + 1);
      counted = identity.name;
      await body(decoded(call.request), identity, abort.signal);
      metrics.requests.inc({ method: rpc, code: 'OK' });
      call.end();
    } catch (error) {
      const cancelled = call.cancelled || call.destroyed;
      const status = abort.signal.aborted && !cancelled
        ? { code: GrpcStatus.UNAVAILABLE, details: 'the daemon is shutting down' }
        : statusOf(error);
      metrics.requests.inc({ method: rpc, code: cancelled ? 'CANCELLED' : GrpcStatus[status.code] });
      if (!cancelled) {
        if (status.code === GrpcStatus.INTERNAL) logger.error('stream failed', { rpc, error: String(error) });
        call.emit('error', serviceError(status));
      }
    } finally {
      if (counted !== undefined) {
        const left = (streamsByIdentity.get(counted) ?? 1) - 1;
        if (left === 0) streamsByIdentity.delete(counted);
        else streamsByIdentity.set(counted, left);
      }
      deps.streams.delete(abort);
      metrics.activeStreams.dec({ rpc });
      call.off('cancelled', onCancel);
    }
  }

  /**
   * Writes with back-pressure: at most maxMessagesInFlight messages not yet flushed. `sent` is
   * called once grpc-js is done with the message.
   */
  function writer<Res>(call: ServerWritableStream<unknown, Res>, signal: AbortSignal) {
    let inFlight = 0;
    let wake: (() => void) | null = null;
    return async (message: Res, sent?: () => void): Promise<void> => {
      while (inFlight >= REQUEST_BOUNDS.maxMessagesInFlight) {
        signal.throwIfAborted();
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          wake = () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          };
          signal.addEventListener('abort', onAbort, { once: true });
        });
      }
      signal.throwIfAborted();
      inFlight++;
      call.write(message, () => {
        sent?.();
        inFlight--;
        const w = wake;
        wake = null;
        w?.();
      });
    };
  }

  function streamLogs(call: ServerWritableStream<pb.StreamLogsRequest, pb.StreamLogsResponse>): Promise<void> {
    return serveStream('StreamLogs', call, async (request, identity, signal) => {
      const job = visibleJob(identity, 'job_id', request.jobId);
      const streams = new Set<'stdout' | 'stderr'>();
      for (const [i, value] of request.streams.entries()) {
        if (value === pb.Stream.STREAM_STDOUT) streams.add('stdout');
        else if (value === pb.Stream.STREAM_STDERR) streams.add('stderr');
        else if (value !== pb.Stream.STREAM_MARKER) throw new ValidationError(`streams[${i}]`, `${value} is not a stream`);
      }
      const selected = streams.size === 0 ? (['stdout', 'stderr'] as const) : [...streams];
      if (request.sinceUnixMicros < 0) throw new ValidationError('since_unix_micros', 'must not be negative');
      if (request.tailLines > REQUEST_BOUNDS.maxTailLines) throw new ValidationError('tail_lines', `must be at most ${REQUEST_BOUNDS.maxTailLines}`);

      const records = job.logs({
        from: request.fromOffset,
        follow: request.follow,
        streams: selected,
        sinceNs: request.sinceUnixMicros > 0 ? BigInt(request.sinceUnixMicros) * 1000n : undefined,
        ...(request.tailLines > 0 ? { tailLines: request.tailLines } : {}),
        signal,
        reuseBuffer: true, // each record is copied into a message before the next one is read
      });
      // Messages are encoded as records arrive (ChunkBatch) and handed to grpc-js already encoded.
      const write = writer(call as unknown as ServerWritableStream<unknown, Buffer | pb.StreamLogsResponse>, signal);
      const batch = new ChunkBatch(REQUEST_BOUNDS.maxMessageBytes);
      const flush = async (): Promise<void> => {
        if (batch.empty) return;
        const { bytes, release } = batch.take();
        await write(bytes, release);
      };
      const add = async (record: LogRecord): Promise<void> => {
        let data = record.data;
        const stream = streamToPb(record.stream);
        const micros = Number(record.timeNs / 1000n);
        for (;;) {
          const taken = batch.append(stream, data, micros, record.offset, record.nextOffset);
          if (taken === null) {
            await flush();
            continue;
          }
          data = data.subarray(taken);
          if (data.length === 0) return;
        }
      };
      const iterator = records[Symbol.asyncIterator]();
      try {
        let next = iterator.next();
        for (;;) {
          // Batch what is already readable; flush as soon as the follower has to wait for more.
          const result = batch.empty ? await next : await Promise.race([next, nextTurn(undefined)]);
          if (result === undefined) {
            await flush();
            continue;
          }
          if (result.done) break;
          await add(result.value); // copied out before the reader may reuse its buffer
          next = iterator.next();
        }
        await flush();
      } finally {
        await iterator.return?.(undefined);
      }
      const final = job.status();
      await write({ chunks: [], finalStatus: jobToPb(final) });
    });
  }

  function watchJobs(call: ServerWritableStream<pb.WatchJobsRequest, pb.WatchJobsResponse>): Promise<void> {
    return serveStream('WatchJobs', call, async (request, identity, signal) => {
      const states = new Set<JobState>(
        request.states.map((value, i) => {
          const state = stateFromPb(value);
          if (state === undefined) throw new ValidationError(`states[${i}]`, `${value} is not a job state`);
          return state;
        }),
      );
      if (request.jobId !== '') visibleJob(identity, 'job_id', request.jobId);
      const matches = (status: { id: string; owner: string; state: JobState }) =>
        canSeeJob(identity, status.owner) &&
        (request.jobId === '' || status.id === request.jobId) &&
        (states.size === 0 || states.has(status.state));
      const write = writer(call, signal);
      const queue: pb.WatchJobsResponse[] = [];
      let wake: (() => void) | null = null;
      const unsubscribe = worker.subscribe((event) => {
        if (!matches(event.status)) return;
        queue.push({ job: jobToPb(event.status), previousState: stateToPb(event.previousState) });
        wake?.();
      });
      try {
        for (const job of worker.list()) {
          const status = job.status();
          if (matches(status)) await write({ job: jobToPb(status), previousState: pb.JobState.JOB_STATE_UNSPECIFIED });
        }
        for (;;) {
          while (queue.length > 0) {
            if (queue.length > 10_000) throw new JobworkerError('resource-exhausted', 'the client reads status changes too slowly');
            await write(queue.shift()!);
          }
          // One job watched and it is final: nothing more will come.
          if (request.jobId !== '' && FINAL_STATES.includes(worker.get(request.jobId)?.state ?? 'lost')) return;
          await new Promise<void>((resolve) => {
            const onAbort = () => resolve();
            wake = () => {
              signal.removeEventListener('abort', onAbort);
              resolve();
            };
            signal.addEventListener('abort', onAbort, { once: true });
          });
          wake = null;
          signal.throwIfAborted();
        }
      } finally {
        unsubscribe();
      }
    });
  }
}

/** Sort key of a job in listings: creation time, then id. */
function pageKey(job: Job): string {
  return `${job.createdAt.toISOString()}/${job.id}`;
}

function encodePageToken(key: string): string {
  return Buffer.from(key).toString('base64url');
}

function decodePageToken(token: string): string {
  const key = Buffer.from(token, 'base64url').toString('utf8');
  if (!/^\d{4}-\d\d-\d\dT[\d:.]+Z\/[0-9a-f-]{36}$/.test(key)) {
    throw new ValidationError('page_token', 'is not a token this server issued');
  }
  return key;
}
