// The daemon's gRPC server: mutual TLS 1.3, authentication and RBAC in an interceptor before any
// handler, the job service, standard health checking and reflection, and the metrics it keeps
// (served by the daemon on their own listener, src/daemon/metrics-listener.ts). Connections are
// accepted by our own listener (./listener.ts), which closes the sockets of dead connections that
// Node's HTTP/2 sessions do not.
import { Server, status as GrpcStatus } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';

import { serializeStreamLogsResponse } from '../api/stream-logs-codec';
import { JobworkerError } from '../errors';
import { JobServiceService } from '../gen/jobworker/v1/jobworker';
import type { Logger } from '../logger';
import { loadServerTlsMaterial, type TlsFilePaths } from '../pki/load';
import type { Fleet } from '../fleet';
import type { Worker } from '../worker';
import { authorizeMethod } from './authz';
import { withSafeDecoding } from './decoding';
import { servedDescriptors } from './descriptors';
import { DEFAULT_JOB_POLICY, type JobPolicy } from './isolation-policy';
import { createJobService } from './job-service';
import { GrpcListener } from './listener';
import { ServerMetrics } from './metrics';
import { createAuthenticationInterceptor } from './peer-identity';
import { addReflectionServices } from './reflection';
import { StreamRegistry } from './stream-registry';
import { createServerCredentials, reloadServerCredentials, type ReloadableServerCredentials } from './tls';

export interface JobworkerServerOptions {
  worker: Worker;
  tls: TlsFilePaths;
  /** "host:port"; port 0 picks a free one (see `port`). */
  listen: string;
  logger: Logger;
  /** Largest request accepted. Default 2 MiB (a start request is at most ~1 MiB of argv and env). */
  maxRequestBytes?: number;
  /** Open StreamLogs/WatchJobs streams per identity. Default 1024. */
  maxStreamsPerIdentity?: number;
  /** Who jobs run as (identity → user) and which isolation choices each role may make. Default DEFAULT_JOB_POLICY. */
  policy?: JobPolicy;
}

const JOB_SERVICE = 'jobworker.v1.JobService';

export function splitHostPort(address: string, field: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new JobworkerError('invalid-argument', `${field}: expected HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: match[1] ?? match[2]!, port };
}

export class JobworkerServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** What the daemon serves on its metrics listener. */
  readonly metrics: ServerMetrics;
  #server: Server;
  #listener: GrpcListener;
  #credentials: ReloadableServerCredentials;
  #health: HealthImplementation;
  #streams: StreamRegistry;
  #shuttingDown: { value: boolean };
  #logger: Logger;
  #fleet: { current: Fleet | null };

  private constructor(fields: {
    server: Server;
    listener: GrpcListener;
    port: number;
    credentials: ReloadableServerCredentials;
    health: HealthImplementation;
    metrics: ServerMetrics;
    streams: StreamRegistry;
    shuttingDown: { value: boolean };
    logger: Logger;
    fleet: { current: Fleet | null };
  }) {
    this.#server = fields.server;
    this.#listener = fields.listener;
    this.port = fields.port;
    this.#credentials = fields.credentials;
    this.#health = fields.health;
    this.metrics = fields.metrics;
    this.#streams = fields.streams;
    this.#shuttingDown = fields.shuttingDown;
    this.#logger = fields.logger;
    this.#fleet = fields.fleet;
  }

  /**
   * Serves pool jobs through `fleet` from now on. The daemon joins its fleet once the server listens:
   * the fleet announces the address clients reach this server at, port included.
   */
  attachFleet(fleet: Fleet): void {
    this.#fleet.current = fleet;
  }

  /** Validates the TLS files (refusing to start with a clear message), binds, serves. */
  static async start(options: JobworkerServerOptions): Promise<JobworkerServer> {
    const { host, port } = splitHostPort(options.listen, 'listen');
    const material = await loadServerTlsMaterial(options.tls);
    for (const warning of material.warnings) options.logger.warn(warning, { file: options.tls.certificatePath });
    const credentials = createServerCredentials(material);
    const logger = options.logger.child({ component: 'server' });
    const audit = logger.child({ audit: true });

    const metrics = new ServerMetrics(options.worker);
    const interceptor = createAuthenticationInterceptor({
      authorize: authorizeMethod,
      onRefused: (method, refusal, identity) => {
        metrics.requests.inc({ method: method.slice(method.lastIndexOf('/') + 1), code: GrpcStatus[refusal.code] });
        audit.info('call refused', { who: identity?.name ?? null, method, code: GrpcStatus[refusal.code], reason: refusal.details });
      },
    });
    const maxRequest = options.maxRequestBytes ?? 2 << 20;
    const server = new Server({
      interceptors: [interceptor],
      'grpc.max_receive_message_length': maxRequest,
      // Find dead peers (half-open connections) and drop them: a ping every 30 s, 10 s to answer.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    });
    const shuttingDown = { value: false };
    const fleet: { current: Fleet | null } = { current: null };
    const streams = new StreamRegistry(options.maxStreamsPerIdentity ?? 1024);
    const decoding = withSafeDecoding(JobServiceService);
    const service = { ...decoding, streamLogs: { ...decoding.streamLogs, responseSerialize: serializeStreamLogsResponse } };
    server.addService(
      service,
      createJobService({
        worker: options.worker,
        fleet: () => fleet.current,
        logger,
        metrics,
        shuttingDown: () => shuttingDown.value,
        streams,
        policy: options.policy ?? DEFAULT_JOB_POLICY,
      }),
    );
    const health = new HealthImplementation({ '': 'SERVING', [JOB_SERVICE]: 'SERVING' });
    health.addToServer(server);
    addReflectionServices(server, servedDescriptors());

    // Our own TCP listener, not server.bindAsync: it holds the connections' sockets and closes
    // those the kernel has closed but Node's HTTP/2 session never will (src/server/listener.ts).
    let listener: GrpcListener;
    try {
      listener = await GrpcListener.start(server, credentials, {
        host,
        port,
        onSwept: (closed) => logger.info('closed connections the peer had dropped', { connections: closed }),
      });
    } catch (error) {
      server.forceShutdown();
      throw new JobworkerError('unavailable', `cannot listen on ${options.listen}: ${(error as Error).message}`);
    }

    return new JobworkerServer({ server, listener, port: listener.port, credentials, health, metrics, streams, shuttingDown, logger, fleet });
  }

  /** Re-reads the TLS files (SIGHUP). New connections get them; established ones and jobs are untouched. */
  async reloadTls(): Promise<void> {
    const material = await reloadServerCredentials(this.#credentials);
    for (const warning of material.warnings) this.#logger.warn(warning, { file: material.paths.certificatePath });
    this.#logger.info('TLS certificates reloaded', { certificate: material.paths.certificatePath });
  }

  /**
   * Stops accepting calls (new ones answer UNAVAILABLE), ends open streams with UNAVAILABLE, waits
   * up to `graceMs` for unary calls in progress, then closes every connection.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    if (this.#shuttingDown.value) return;
    this.#shuttingDown.value = true;
    this.#health.setStatus('', 'NOT_SERVING');
    this.#health.setStatus(JOB_SERVICE, 'NOT_SERVING');
    this.#listener.stopAccepting();
    this.#streams.abortAll(new JobworkerError('unavailable', 'the daemon is shutting down'));
    const graceful = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
    });
    await Promise.race([graceful, timeout]);
    clearTimeout(timer);
    this.#listener.close(); // sockets a session could not close (src/server/listener.ts)
  }
}
