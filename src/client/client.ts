// A typed client over the generated stubs: promises for unary calls, async iterables for streams,
// errors as ClientError carrying the gRPC code and the server's message. It takes and answers plain
// objects (./requests.ts, ./views.ts); the generated messages stay inside the client. Prints nothing.
import {
  Metadata,
  status as GrpcStatus,
  type CallOptions,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';

import { randomUUID } from 'node:crypto';

import { REQUEST_BOUNDS } from '../api/request-bounds';
import { RUNNER_ADDRESS_METADATA } from '../api/runner-redirect';
import { decodeStreamLogsResponse } from '../api/stream-logs-codec';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { TlsFilePaths } from '../pki/load';
import {
  identityUsageFromPb,
  jobChangeFromPb,
  jobFromPb,
  listJobsRequestToPb,
  logMessageFromPb,
  requiredJobFromPb,
  startJobRequestToPb,
  streamLogsRequestToPb,
  watchJobsRequestToPb,
} from './convert';
import { ClientError } from './client-error';
import { connectionCredentials } from './credentials';
import { LogSession, plainHost, proxyApplies } from './log-session';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, HEALTH_CHECK_PATH, type ServingStatus } from './health';
import type { ListJobsRequest, StartJobRequest, StopJobOptions, StreamLogsOptions, StreamLogsRequest, WatchJobsRequest } from './requests';
import type { IdentityUsageView, JobChangeView, JobPageView, JobView, LogMessageView, StopResultView } from './views';

export interface ConnectOptions {
  /** "host:port" of the daemon. */
  address: string;
  tls: TlsFilePaths;
  /** Verify the server certificate against this name instead of the host dialled. */
  serverName?: string;
  /** Each unary call fails after this long without an answer (connecting included). Default 10 s. */
  callTimeoutMs?: number;
}

function toClientError(error: unknown): unknown {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof (error as ServiceError).code === 'number') {
    const e = error as ServiceError;
    const runner = e.metadata?.get(RUNNER_ADDRESS_METADATA)[0];
    return new ClientError(e.code, e.details || e.message, e.code === GrpcStatus.FAILED_PRECONDITION && typeof runner === 'string' && runner !== '' ? runner : null);
  }
  return error;
}

/** The largest message the client takes (a StreamLogs message is at most a few MiB). */
const MAX_RECEIVE_MESSAGE_BYTES = 8 << 20;

export class JobworkerClient {
  readonly address: string;
  /** The identity our certificate presents (its CN) and its roles. */
  get identity(): { name: string; roles: string[] } | undefined {
    // Read on demand: the roles extension needs the certificate parser, which a short-lived client
    // (job-cli) should not pay for at start-up.
    if (this.#identity === null) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { identityFromCertificate } = require('../pki/identity') as typeof import('../pki/identity');
      try {
        const found = identityFromCertificate(this.#certificateDer);
        this.#identity = { name: found.name, roles: [...found.roles] };
      } catch {
        this.#identity = undefined;
      }
    }
    return this.#identity;
  }

  #identity: { name: string; roles: string[] } | undefined | null = null;
  #certificateDer: Buffer;
  /** Problems worth telling the user about (a certificate that expires soon). */
  readonly warnings: string[];
  #stub: pb.JobServiceClient;
  #timeoutMs: number;
  #options: ConnectOptions;
  /** Clients of the daemons that run pool jobs, by address (same certificate). */
  #runners = new Map<string, Promise<JobworkerClient>>();

  /** Log streams' own connection (./log-session.ts); null for an address only grpc-js resolves, or a proxy. */
  #logSession: LogSession | null;

  private constructor(options: ConnectOptions, address: string, stub: pb.JobServiceClient, timeoutMs: number, certificateDer: Buffer, warnings: string[], logSession: LogSession | null) {
    this.#options = options;
    this.#logSession = logSession;
    this.address = address;
    this.#stub = stub;
    this.#timeoutMs = timeoutMs;
    this.#certificateDer = certificateDer;
    this.warnings = warnings;
  }

  /** Loads and checks the TLS files (errors name the file and the fix), then creates the channel. */
  static async connect(options: ConnectOptions): Promise<JobworkerClient> {
    const { credentials, tls, warnings, certificateDer } = await connectionCredentials(options.tls, options.serverName === undefined ? {} : { serverName: options.serverName });
    const stub = new pb.JobServiceClient(options.address, credentials, {
      'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
      // HTTP/2's default 64 KiB window makes a log stream wait for a window update every 64 KiB;
      // a larger one lets output flow at disk speed (the server still bounds what it has in flight).
      'grpc-node.flow_control_window': 1 << 20,
      // A dead daemon is noticed instead of a stream hanging forever.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    const timeoutMs = options.callTimeoutMs ?? 10_000;
    const host = plainHost(options.address);
    const logSession =
      host === null || proxyApplies(host)
        ? null
        : new LogSession({ address: options.address, tls, connectTimeoutMs: timeoutMs, maxMessageBytes: MAX_RECEIVE_MESSAGE_BYTES });
    return new JobworkerClient(options, options.address, stub, timeoutMs, certificateDer, warnings, logSession);
  }

  close(): void {
    this.#stub.close();
    this.#logSession?.close();
    for (const runner of this.#runners.values()) void runner.then((client) => client.close(), () => undefined);
    this.#runners.clear();
  }

  /** A client of the daemon at `address` (a pool job's runner), with this client's certificate. */
  #runner(address: string): Promise<JobworkerClient> {
    let client = this.#runners.get(address);
    if (client === undefined) {
      // The name checked is the one in the address: the runner's certificate must name it.
      const { serverName: _ignored, ...options } = this.#options;
      client = JobworkerClient.connect({ ...options, address });
      this.#runners.set(address, client);
    }
    return client;
  }

  #callOptions(): Partial<CallOptions> {
    return { deadline: Date.now() + this.#timeoutMs };
  }

  #unary<Req, Res>(method: (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (e: ServiceError | null, r: Res) => void) => unknown, request: Req, timeoutMs?: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      const options = timeoutMs === undefined ? this.#callOptions() : { deadline: Date.now() + timeoutMs };
      method.call(this.#stub, request, new Metadata(), options, (error, response) => (error ? reject(toClientError(error)) : resolve(response)));
    });
  }

  /**
   * Connects (if not yet connected) and asks the daemon's health service. Fails within `timeoutMs`
   * (default: the call timeout): UNAVAILABLE at once when the connection fails (its reason in the
   * details: refused, TLS refused…), DEADLINE_EXCEEDED when nothing answers. Streams have no
   * deadline, so call this first to bound the time to connect.
   */
  checkHealth(timeoutMs?: number): Promise<ServingStatus> {
    return new Promise((resolve, reject) => {
      this.#stub.makeUnaryRequest(
        HEALTH_CHECK_PATH,
        (service: string) => encodeHealthCheckRequest(service),
        (bytes: Buffer) => decodeHealthCheckResponse(bytes),
        '',
        new Metadata(),
        { deadline: Date.now() + (timeoutMs ?? this.#timeoutMs) },
        (error, status) => (error ? reject(toClientError(error)) : resolve(status!)),
      );
    });
  }

  async startJob(request: StartJobRequest): Promise<JobView> {
    // A pool job gets its id here, so that asking again after a lost answer queues it once.
    const withId = request.pool !== undefined && request.pool !== '' && request.jobId === undefined ? { ...request, jobId: randomUUID() } : request;
    const response = await this.#unary(this.#stub.startJob, startJobRequestToPb(withId));
    return requiredJobFromPb(response.job, 'StartJob');
  }

  /** Waits for the stop to complete (grace period included), so its deadline is the grace plus the usual timeout. */
  async stopJob(jobId: string, options: StopJobOptions = {}): Promise<StopResultView> {
    try {
      return await this.#stopHere(jobId, options);
    } catch (error) {
      if (!(error instanceof ClientError) || error.runnerAddress === null || error.runnerAddress === this.address) throw error;
      return (await this.#runner(error.runnerAddress)).#stopHere(jobId, options);
    }
  }

  async #stopHere(jobId: string, options: StopJobOptions): Promise<StopResultView> {
    const request = pb.StopJobRequest.fromPartial({ jobId, signal: options.signal ?? '', graceMs: options.graceMs });
    const response = await this.#unary(this.#stub.stopJob, request, (options.graceMs ?? 10_000) + this.#timeoutMs + 10_000);
    return { job: requiredJobFromPb(response.job, 'StopJob'), alreadyFinished: response.alreadyFinished };
  }

  async getJob(jobId: string): Promise<JobView> {
    return requiredJobFromPb((await this.#unary(this.#stub.getJob, { jobId })).job, 'GetJob');
  }

  /** One page of jobs, oldest first. */
  async listJobs(request: ListJobsRequest = {}): Promise<JobPageView> {
    const response = await this.#unary(this.#stub.listJobs, listJobsRequestToPb(request));
    return { jobs: response.jobs.map(jobFromPb), nextPageToken: response.nextPageToken };
  }

  /** Every page. */
  async listAllJobs(request: Omit<ListJobsRequest, 'pageToken' | 'pageSize'> = {}): Promise<JobView[]> {
    const jobs: JobView[] = [];
    let pageToken = '';
    do {
      const page = await this.listJobs({ ...request, pageToken, pageSize: REQUEST_BOUNDS.maxPageSize });
      jobs.push(...page.jobs);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return jobs;
  }

  /** What `identity` (default: ours) uses of its limits. Others' need the admin role. */
  async getIdentityUsage(identity = ''): Promise<IdentityUsageView> {
    return identityUsageFromPb((await this.#unary(this.#stub.getIdentityUsage, { identity })).usage);
  }

  async removeJob(jobId: string): Promise<void> {
    await this.#unary(this.#stub.removeJob, { jobId });
  }

  /**
   * The job's output; ends after the message carrying the final status. Break out to cancel. A pool
   * job that another daemon runs is streamed from that daemon (the first answer says where).
   * With `options.reuseBuffers`, a message's chunk data is valid only until the next message is
   * asked for (see StreamLogsOptions).
   */
  async *streamLogs(request: StreamLogsRequest, signal?: AbortSignal, options: StreamLogsOptions = {}): AsyncGenerator<LogMessageView> {
    let first = true;
    try {
      for await (const message of this.#streamHere(request, signal, options)) {
        first = false;
        yield message;
      }
    } catch (error) {
      if (!first || !(error instanceof ClientError) || error.runnerAddress === null || error.runnerAddress === this.address) throw error;
      yield* (await this.#runner(error.runnerAddress)).#streamHere(request, signal, options);
    }
  }

  async *#streamHere(request: StreamLogsRequest, signal: AbortSignal | undefined, options: StreamLogsOptions): AsyncGenerator<LogMessageView> {
    // Not the generated stub's streamLogs: messages are decoded without copying each payload.
    const method = pb.JobServiceService.streamLogs;
    if (this.#logSession !== null) {
      const encoded = method.requestSerialize(streamLogsRequestToPb(request));
      const messages = this.#logSession.serverStream(method.path, encoded, signal, { reuseBuffers: options.reuseBuffers === true });
      for await (const message of messages) yield logMessageFromPb(decodeStreamLogsResponse(message));
      return;
    }
    const call = this.#stub.makeServerStreamRequest(method.path, method.requestSerialize, decodeStreamLogsResponse, streamLogsRequestToPb(request), new Metadata(), {});
    for await (const message of iterate(call, signal)) yield logMessageFromPb(message);
  }

  /** The current status of the matching jobs, then every change. Break out to cancel. */
  async *watchJobs(request: WatchJobsRequest = {}, signal?: AbortSignal): AsyncGenerator<JobChangeView> {
    for await (const message of iterate(this.#stub.watchJobs(watchJobsRequestToPb(request)), signal)) yield jobChangeFromPb(message);
  }
}

/** A server stream as an async iterable; breaking out of the loop (or `signal`) cancels the call. */
async function* iterate<T>(call: ClientReadableStream<T>, signal?: AbortSignal): AsyncGenerator<T> {
  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call) yield message as T;
  } catch (error) {
    throw toClientError(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    call.cancel();
  }
}
