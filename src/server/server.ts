// The daemon's gRPC server: mutual TLS 1.3, authentication and RBAC in an interceptor before any
// handler, the job service, standard health checking and reflection, and the metrics it keeps
// (served by the daemon on their own listener, src/daemon/metrics-listener.ts). Connections are
// accepted by our own listener (./listener.ts), which closes the sockets of dead connections that
// Node's HTTP/2 sessions do not.
import { Server, status as GrpcStatus } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { Counter, Gauge } from 'prom-client';

import { serializeStreamLogsResponse } from '../api/stream-logs-codec';
import { errorCode, JobworkerError } from '../errors';
import { JobServiceService } from '../gen/jobworker/v1/jobworker';
import type { Logger } from '../logger';
import { loadServerTlsMaterial, type TlsFilePaths } from '../pki/load';
import type { Fleet } from '../fleet';
import type { Worker } from '../worker';
import { authorizeMethod } from './authz';
import { withSafeDecoding } from './decoding';
import { servedDescriptors } from './descriptors';
import { DEFAULT_JOB_POLICY, type JobPolicy } from './isolation-policy';
import { DEFAULT_FD_RESERVE, FdBudget, openFileCount, openFilesLimit } from './fd-budget';
import { createJobService } from './job-service';
import { DEFAULT_MAX_UNREAD_WATCH_JOBS } from './watch';
import { GrpcListener } from './listener';
import { ServerMetrics } from './metrics';
import { OwnerJobCounts } from './owner-jobs';
import { installPeerCertificateCache } from './peer-certificate-cache';
import { createAuthenticationInterceptor } from './peer-identity';
import { installPreframing } from './preframed-messages';
import { addReflectionServices } from './reflection';
import { RefusalLog } from './refusal-log';
import { RequestReads } from './request-reads';
import { ScanLimiter } from './scan-limiter';
import { SharedLogMessages } from './shared-log-messages';
import { statusOf } from './status';
import { StreamRegistry } from './stream-registry';
import { createServerCredentials, reloadServerCredentials, type ReloadableServerCredentials } from './tls';

export interface JobworkerServerOptions {
  worker: Worker;
  tls: TlsFilePaths;
  /**
   * "host:port", or several: one listener each. Port 0 picks a free one (see `port`); the addresses
   * after the first with port 0 take the port the first one got.
   */
  listen: string | readonly string[];
  logger: Logger;
  /** Largest request accepted. Default 2 MiB (a start request is at most ~1 MiB of argv and env). */
  maxRequestBytes?: number;
  /** Open streams (StreamLogs, WatchJobs, health Watch, reflection) per identity. Default 1024. */
  maxStreamsPerIdentity?: number;
  /** Calls per identity reading their request at once (./request-reads.ts), and as many calls with a request stream (reflection). Default 32. */
  maxRequestReadsPerIdentity?: number;
  /** Who jobs run as (identity → user) and which isolation choices each role may make. Default DEFAULT_JOB_POLICY. */
  policy?: JobPolicy;
  /** Jobs with a change a WatchJobs client has not read, at most (./watch.ts). Default 10000. */
  maxUnreadWatchJobs?: number;
  /** Identities given metric series of their own (those closest to a quota). Default 20. */
  metricsIdentities?: number;
  /** Connections: caps applied at accept, before TLS; the TLS handshake's time limit; streams per connection. */
  connections?: ServerConnectionLimits;
  /** The fd budget (./fd-budget.ts). */
  fileDescriptors?: { limit?: number; reserve?: number; identityJobShare?: number; identityStreamShare?: number };
  /** Concurrent tail/since scans (./scan-limiter.ts). */
  logScans?: { max?: number; maxPerIdentity?: number };
  /** Interval of the aggregated audit lines for refusals (./refusal-log.ts). Default 10 s. */
  refusalLogIntervalMs?: number;
}

export interface ServerConnectionLimits {
  /** Open connections at most. Default 1024. */
  max?: number;
  /** Open connections from one peer address at most. Default 128. */
  maxPerAddress?: number;
  /** A TLS handshake not done by then is cut. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Concurrent calls (HTTP/2 streams) per connection (SETTINGS_MAX_CONCURRENT_STREAMS). Default 256. */
  maxStreamsPerConnection?: number;
}

/** Default SETTINGS_MAX_CONCURRENT_STREAMS: a client with more calls at once opens more connections. */
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 256;

const JOB_SERVICE = 'jobworker.v1.JobService';
const STREAM_LOGS = `/${JOB_SERVICE}/StreamLogs`;

export function splitHostPort(address: string, field: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new JobworkerError('invalid-argument', `${field}: expected HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: match[1] ?? match[2]!, port };
}

/** A listening socket could not be opened; `code` is the errno name (EADDRINUSE…). */
export class ListenError extends JobworkerError {
  constructor(
    readonly address: string,
    readonly code: string | undefined,
    reason: string,
    what?: string,
  ) {
    super('unavailable', `cannot listen on ${address}${what === undefined ? '' : ` for ${what}`}: ${reason}`);
  }
}

export class JobworkerServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** What the daemon serves on its metrics listener. */
  readonly metrics: ServerMetrics;
  #server: Server;
  #listeners: GrpcListener[];
  #credentials: ReloadableServerCredentials;
  #health: HealthImplementation;
  #streams: StreamRegistry;
  #shuttingDown: { value: boolean };
  #logger: Logger;
  #refusals: RefusalLog;
  #ownerJobs: OwnerJobCounts;
  /** The fd budget in force (the daemon logs it at start). */
  readonly fds: FdBudget;
  #fleet: { current: Fleet | null };

  private constructor(fields: {
    server: Server;
    listeners: GrpcListener[];
    port: number;
    credentials: ReloadableServerCredentials;
    health: HealthImplementation;
    metrics: ServerMetrics;
    streams: StreamRegistry;
    shuttingDown: { value: boolean };
    logger: Logger;
    refusals: RefusalLog;
    ownerJobs: OwnerJobCounts;
    fds: FdBudget;
    fleet: { current: Fleet | null };
  }) {
    this.#server = fields.server;
    this.#listeners = fields.listeners;
    this.port = fields.port;
    this.#credentials = fields.credentials;
    this.#health = fields.health;
    this.metrics = fields.metrics;
    this.#streams = fields.streams;
    this.#shuttingDown = fields.shuttingDown;
    this.#logger = fields.logger;
    this.#refusals = fields.refusals;
    this.#ownerJobs = fields.ownerJobs;
    this.fds = fields.fds;
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
    const addresses = typeof options.listen === 'string' ? [options.listen] : [...options.listen];
    const endpoints = addresses.map((address) => ({ address, ...splitHostPort(address, 'listen') }));
    const material = await loadServerTlsMaterial(options.tls);
    for (const warning of material.warnings) options.logger.warn(warning, { file: options.tls.certificatePath });
    const limits = options.connections ?? {};
    const credentials = createServerCredentials(material, limits.handshakeTimeoutMs);
    const logger = options.logger.child({ component: 'server' });
    const audit = logger.child({ audit: true });
    // Timers never throw (src/periodic.ts): what failed is logged instead.
    const onPeriodicError = (task: string, error: unknown, failures: number) =>
      logger.error('periodic task failed; it runs again at its next tick', { task, failures, error: error instanceof Error ? error.message : String(error) });
    const refusals = new RefusalLog(audit, options.refusalLogIntervalMs, onPeriodicError);

    const metrics = new ServerMetrics(options.worker, options.metricsIdentities);
    const streams = new StreamRegistry(options.maxStreamsPerIdentity ?? 1024);
    const listeners: GrpcListener[] = [];
    const fdOptions = options.fileDescriptors ?? {};
    const fds = new FdBudget(
      {
        limit: fdOptions.limit ?? openFilesLimit().soft,
        reserved: openFileCount() + (fdOptions.reserve ?? DEFAULT_FD_RESERVE),
        ...(fdOptions.identityJobShare === undefined ? {} : { identityJobShare: fdOptions.identityJobShare }),
        ...(fdOptions.identityStreamShare === undefined ? {} : { identityStreamShare: fdOptions.identityStreamShare }),
      },
      { runningJobs: () => options.worker.runningJobs, connections: () => listeners.reduce((sum, listener) => sum + listener.connections, 0), logStreams: () => streams.openOf(STREAM_LOGS) },
    );
    const interceptor = createAuthenticationInterceptor({
      authorize: authorizeMethod,
      reads: new RequestReads(options.maxRequestReadsPerIdentity),
      streamReads: new RequestReads(options.maxRequestReadsPerIdentity),
      onRefused: (method, refusal, identity) => {
        metrics.requests.inc({ method: method.slice(method.lastIndexOf('/') + 1), code: GrpcStatus[refusal.code] });
        // One reader calling in a loop must not fill the log: aggregated per identity (./refusal-log.ts).
        const who = identity?.name ?? '(no identity)';
        refusals.note('call refused', who, { who: identity?.name ?? null, method, code: GrpcStatus[refusal.code], reason: refusal.details });
      },
      // Its connection is never closed to make room for another (src/server/listener.ts).
      onIdentified: (peer) => {
        for (const listener of listeners) listener.markInUse(peer);
      },
      admitStream: (method, identity) => {
        try {
          if (method === STREAM_LOGS) fds.check('log stream', { name: identity.name, holding: streams.openByOf(identity.name, STREAM_LOGS) });
          const release = streams.admit(identity.name, method);
          const rpc = method.slice(method.lastIndexOf('/') + 1);
          metrics.activeStreams.inc({ rpc });
          return () => {
            release();
            metrics.activeStreams.dec({ rpc });
          };
        } catch (error) {
          return statusOf(error);
        }
      },
    });
    installPeerCertificateCache();
    if (!installPreframing()) logger.warn('this grpc-js has no serializeMessage to replace: log messages are copied once more (slower streams)', { module: '@grpc/grpc-js' });
    const maxRequest = options.maxRequestBytes ?? 2 << 20;
    const server = new Server({
      interceptors: [interceptor],
      'grpc.max_receive_message_length': maxRequest,
      // Calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
      'grpc.max_concurrent_streams': limits.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
      // Find dead peers (half-open connections) and drop them: a ping every 30 s, 10 s to answer.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    });
    const shuttingDown = { value: false };
    const ownerJobs = new OwnerJobCounts(options.worker);
    const scans = new ScanLimiter(options.logScans?.max, options.logScans?.maxPerIdentity);
    const sharedLogMessages = new SharedLogMessages();
    new Counter({ name: 'jobworker_log_messages_total', help: 'StreamLogs messages of output sent, by source: read (the stream read and encoded it) or shared (another follower of the job at the same place had)', labelNames: ['source'], registers: [metrics.registry], collect() {
      const stats = sharedLogMessages.stats();
      this.reset();
      this.inc({ source: 'read' }, stats.encoded);
      this.inc({ source: 'shared' }, stats.shared);
    } });
    const fleet: { current: Fleet | null } = { current: null };
    const decoding = withSafeDecoding(JobServiceService);
    const service = {
      ...decoding,
      streamLogs: { ...decoding.streamLogs, responseSerialize: serializeStreamLogsResponse },
      listJobs: { ...decoding.listJobs, responseSerialize: (encoded: Buffer) => encoded },
    };
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
        fds,
        ownerJobs,
        scans,
        sharedLogMessages,
        refusals,
        maxUnreadWatchJobs: options.maxUnreadWatchJobs ?? DEFAULT_MAX_UNREAD_WATCH_JOBS,
      }),
    );
    const health = new HealthImplementation({ '': 'SERVING', [JOB_SERVICE]: 'SERVING' });
    health.addToServer(server);
    addReflectionServices(server, servedDescriptors());

    // Our own TCP listener, not server.bindAsync: it holds the connections' sockets and closes
    // those the kernel has closed but Node's HTTP/2 session never will (src/server/listener.ts).
    const connectionsEvicted = new Counter({ name: 'jobworker_connections_evicted_total', help: 'Connections that had made no call, closed at a connection cap to make room for a new one, by cap', labelNames: ['reason'], registers: [metrics.registry] });
    const connectionCapOf = (reason: string) => (reason.includes('per address') ? 'per address' : reason.includes('budget') ? 'fd budget' : 'total');
    const connectionsRefused = new Counter({ name: 'jobworker_connections_refused_total', help: 'Connections closed at accept, by reason', labelNames: ['reason'], registers: [metrics.registry] });
    try {
      for (const endpoint of endpoints) {
        const port = endpoint.port === 0 && listeners.length > 0 ? listeners[0]!.port : endpoint.port;
        try {
          listeners.push(
            await GrpcListener.start(server, credentials, {
              host: endpoint.host,
              port,
              // With several addresses (the dev daemon's two loopbacks), each listener has the caps.
              ...(limits.max === undefined ? {} : { maxConnections: limits.max }),
              ...(limits.maxPerAddress === undefined ? {} : { maxConnectionsPerAddress: limits.maxPerAddress }),
              admit: () => fds.allows('connection'),
              onRefused: (address, reason) => {
                connectionsRefused.inc({ reason: connectionCapOf(reason) });
                refusals.note('connection refused', address, { address, reason });
              },
              onEvicted: (address, reason) => {
                connectionsEvicted.inc({ reason: connectionCapOf(reason) });
                refusals.note('connection closed to make room', address, { address, reason });
              },
              onSwept: (closed) => logger.info('closed connections the peer had dropped', { connections: closed }),
              onError: onPeriodicError,
            }),
          );
        } catch (error) {
          throw new ListenError(endpoint.address, errorCode(error), (error as Error).message);
        }
      }
    } catch (error) {
      for (const listener of listeners) listener.close();
      server.forceShutdown();
      refusals.close();
      ownerJobs.close();
      throw error;
    }
    new Gauge({ name: 'jobworker_connections', help: 'Open client connections', registers: [metrics.registry], collect() {
      this.set(listeners.reduce((sum, listener) => sum + listener.connections, 0));
    } });
    new Gauge({ name: 'jobworker_fd_budget', help: "The daemon's fd budget: total, and in use by jobs, connections and log streams", labelNames: ['part'], registers: [metrics.registry], collect() {
      const use = fds.inUse();
      this.set({ part: 'total' }, fds.total);
      this.set({ part: 'jobs' }, use.jobs);
      this.set({ part: 'connections' }, use.connections);
      this.set({ part: 'log streams' }, use.logStreams);
    } });

    return new JobworkerServer({ server, listeners, port: listeners[0]!.port, credentials, health, metrics, streams, shuttingDown, logger, refusals, ownerJobs, fds, fleet });
  }

  /**
   * Re-reads the TLS files (SIGHUP). New connections get them; jobs are untouched. Established
   * connections are kept, unless the client CAs changed: each was verified against the old ones
   * only, so they are closed (their clients reconnect, and are verified against the new ones).
   */
  async reloadTls(): Promise<void> {
    const caBefore = this.#credentials.material.caPem;
    const material = await reloadServerCredentials(this.#credentials);
    for (const warning of material.warnings) this.#logger.warn(warning, { file: material.paths.certificatePath });
    let closed = 0;
    if (material.caPem !== caBefore) for (const listener of this.#listeners) closed += listener.closeConnections();
    this.#logger.info('TLS certificates reloaded', { certificate: material.paths.certificatePath, ...(material.caPem !== caBefore ? { caChanged: true, connectionsClosed: closed } : {}) });
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
    for (const listener of this.#listeners) listener.stopAccepting();
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
    for (const listener of this.#listeners) listener.close(); // sockets a session could not close (src/server/listener.ts)
    this.#refusals.close();
    this.#ownerJobs.close();
  }
}
