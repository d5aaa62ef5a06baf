// A typed client over the generated stubs: promises for unary calls, async iterables for streams,
// errors as ClientError carrying the gRPC code and the server's message. Prints nothing.
import {
  makeGenericClientConstructor,
  Metadata,
  status as GrpcStatus,
  type CallOptions,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';

import { decodeStreamLogsResponse } from '../api/stream-logs-codec';
import * as pb from '../gen/jobworker/v1/jobworker';
import type { TlsFilePaths } from '../pki/load';
import { loadChannelCredentials } from './credentials';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, HEALTH_CHECK_PATH, type ServingStatus } from './health';

export interface ConnectOptions {
  /** "host:port" of the daemon. */
  address: string;
  tls: TlsFilePaths;
  /** Verify the server certificate against this name instead of the host dialled. */
  serverName?: string;
  /** Each unary call fails after this long without an answer (connecting included). Default 10 s. */
  callTimeoutMs?: number;
}

/** A failed call: the gRPC status code (name and number) and the server's one-line message. */
export class ClientError extends Error {
  constructor(
    readonly code: GrpcStatus,
    readonly details: string,
  ) {
    super(details);
    this.name = 'ClientError';
  }

  get codeName(): string {
    return GrpcStatus[this.code] ?? String(this.code);
  }
}

function toClientError(error: unknown): unknown {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof (error as ServiceError).code === 'number') {
    const e = error as ServiceError;
    return new ClientError(e.code, e.details || e.message);
  }
  return error;
}

// The generated client, but StreamLogs messages are decoded without copying each payload.
const StreamingClient = makeGenericClientConstructor(
  {
    ...pb.JobServiceService,
    streamLogs: { ...pb.JobServiceService.streamLogs, responseDeserialize: decodeStreamLogsResponse },
  },
  'jobworker.v1.JobService',
) as unknown as typeof pb.JobServiceClient;

export class JobworkerClient {
  readonly address: string;
  /** The identity our certificate presents (its CN) and its roles. */
  readonly identity: { name: string; roles: string[] } | undefined;
  /** Problems worth telling the user about (a certificate that expires soon). */
  readonly warnings: string[];
  #stub: pb.JobServiceClient;
  #timeoutMs: number;

  private constructor(address: string, stub: pb.JobServiceClient, timeoutMs: number, identity: JobworkerClient['identity'], warnings: string[]) {
    this.address = address;
    this.#stub = stub;
    this.#timeoutMs = timeoutMs;
    this.identity = identity;
    this.warnings = warnings;
  }

  /** Loads and checks the TLS files (errors name the file and the fix), then creates the channel. */
  static async connect(options: ConnectOptions): Promise<JobworkerClient> {
    const { credentials, material } = await loadChannelCredentials(options.tls, options.serverName === undefined ? {} : { serverName: options.serverName });
    const stub = new StreamingClient(options.address, credentials, {
      'grpc.max_receive_message_length': 8 << 20,
      // HTTP/2's default 64 KiB window makes a log stream wait for a window update every 64 KiB;
      // a larger one lets output flow at disk speed (the server still bounds what it has in flight).
      'grpc-node.flow_control_window': 1 << 20,
      // A dead daemon is noticed instead of a stream hanging forever.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    const identity = material.identity === undefined ? undefined : { name: material.identity.name, roles: [...material.identity.roles] };
    return new JobworkerClient(options.address, stub, options.callTimeoutMs ?? 10_000, identity, material.warnings);
  }

  close(): void {
    this.#stub.close();
  }

  #options(): Partial<CallOptions> {
    return { deadline: Date.now() + this.#timeoutMs };
  }

  #unary<Req, Res>(method: (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (e: ServiceError | null, r: Res) => void) => unknown, request: Req, timeoutMs?: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      const options = timeoutMs === undefined ? this.#options() : { deadline: Date.now() + timeoutMs };
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

  async startJob(request: Partial<pb.StartJobRequest> & { command: string }): Promise<pb.Job> {
    const response = await this.#unary(this.#stub.startJob, pb.StartJobRequest.fromPartial(request));
    return response.job!;
  }

  /** Waits for the stop to complete (grace period included), so its deadline is the grace plus the usual timeout. */
  async stopJob(jobId: string, options: { signal?: string; graceMs?: number } = {}): Promise<pb.StopJobResponse> {
    const request = pb.StopJobRequest.fromPartial({ jobId, signal: options.signal ?? '', graceMs: options.graceMs });
    return this.#unary(this.#stub.stopJob, request, (options.graceMs ?? 10_000) + this.#timeoutMs + 10_000);
  }

  async getJob(jobId: string): Promise<pb.Job> {
    return (await this.#unary(this.#stub.getJob, { jobId })).job!;
  }

  async listJobs(request: Partial<pb.ListJobsRequest> = {}): Promise<pb.ListJobsResponse> {
    return this.#unary(this.#stub.listJobs, pb.ListJobsRequest.fromPartial(request));
  }

  /** Every page. */
  async listAllJobs(request: Partial<Omit<pb.ListJobsRequest, 'pageToken'>> = {}): Promise<pb.Job[]> {
    const jobs: pb.Job[] = [];
    let pageToken = '';
    do {
      const page = await this.listJobs({ ...request, pageToken, pageSize: 1000 });
      jobs.push(...page.jobs);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return jobs;
  }

  async removeJob(jobId: string): Promise<void> {
    await this.#unary(this.#stub.removeJob, { jobId });
  }

  /** The job's output; ends after the message carrying the final status. Break out to cancel. */
  streamLogs(request: Partial<pb.StreamLogsRequest> & { jobId: string }, signal?: AbortSignal): AsyncIterable<pb.StreamLogsResponse> {
    return iterate(this.#stub.streamLogs(pb.StreamLogsRequest.fromPartial(request)), signal);
  }

  watchJobs(request: Partial<pb.WatchJobsRequest> = {}, signal?: AbortSignal): AsyncIterable<pb.WatchJobsResponse> {
    return iterate(this.#stub.watchJobs(pb.WatchJobsRequest.fromPartial(request)), signal);
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
