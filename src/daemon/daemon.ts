// The daemon's start-up and shutdown, in order. Start: the TLS files are checked (refusing bad ones
// before touching cgroups or the state directory), the Worker opens (recovering what a previous run
// left), the gRPC server listens, then the metrics listener. Shutdown: the server stops serving
// (streams end), the metrics listener closes, then the Worker stops (or leaves) the jobs.
import { hostname } from 'node:os';
import * as path from 'node:path';

import { JobworkerError } from '../errors';
import { checkHostName, checkPoolName, Fleet } from '../fleet';
import { Logger } from '../logger';
import { configDir, stateHome } from '../paths';
import { ensureDevPki } from '../pki/dev';
import { loadServerTlsMaterial } from '../pki/load';
import { JobworkerServer, ListenError, openFilesLimit, splitHostPort } from '../server';
import { nssUserDatabase, Worker } from '../worker';
import type { DaemonConfig, FleetConfig } from './config';
import { IdleMemoryReleaser } from './idle-memory';
import { checkDynamicUids, hiddenPathsOf, jobPolicyOf } from './job-policy';
import { MetricsListener } from './metrics-listener';

export interface DaemonOptions {
  config: DaemonConfig;
  /** Development mode: a dev PKI made on first run, a per-user state directory. */
  dev: boolean;
  /** Which of the config values were given explicitly (dev mode fills in only the others). */
  explicit: { stateDir: boolean; tls: boolean };
  /** The config file read, if any: its directory is hidden from jobs. */
  configFile?: string | null;
}

export interface RunningDaemon {
  server: JobworkerServer;
  /** null when the config turns metrics off. */
  metrics: MetricsListener | null;
  worker: Worker;
  /** null without a fleet in the config. */
  fleet: Fleet | null;
  logger: Logger;
  /** Stops serving and, per config, stops the jobs; resolves when done. */
  shutdown(reason: string): Promise<void>;
  /**
   * Logs "ready". The caller does so once its signal handlers are in place: a supervisor (or a
   * test) that sends SIGTERM on "ready" must not meet the default action, which kills outright.
   */
  announceReady(): void;
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const config = structuredClone(options.config);
  const logger = new Logger({ level: config.log.level, ...(config.log.format === null ? {} : { format: config.log.format }) });

  if (options.dev) {
    if (!options.explicit.stateDir) config.stateDir = path.join(stateHome(), 'dev');
    if (!options.explicit.tls) {
      const pki = await ensureDevPki(configDir());
      config.tls = pki.server;
      if (pki.created.length > 0) logger.info('dev PKI created', { files: pki.created });
      if (pki.installedClient !== null) logger.info('dev admin client certificate ready for job-cli', { dir: configDir() });
      else logger.warn('dev client certificate not installed', { reason: pki.notInstalledReason });
    }
  }
  if (config.tls === null) {
    throw new JobworkerError('invalid-argument', 'no TLS files configured: give --tls-ca/--tls-cert/--tls-key, a config file with "tls", or run with --dev');
  }
  // Refuse to start on bad certificates (or a bad fleet section) before touching cgroups or the state directory.
  await loadServerTlsMaterial(config.tls);
  if (config.fleet !== null) checkFleetConfig(config.fleet);
  checkDynamicUids(config);
  const policy = await jobPolicyOf(config, nssUserDatabase);
  const hidden = hiddenPathsOf(config, options.configFile ?? null);
  for (const { path: dir, reason } of hidden.notHidden) logger.warn('not hidden from jobs', { directory: dir, reason });

  const worker = await Worker.open({
    stateDir: config.stateDir,
    cgroup: config.cgroupRoot !== null ? { root: config.cgroupRoot } : config.cgroupRootName !== null ? { rootName: config.cgroupRootName } : {},
    identityLimits: config.identityLimits,
    identityOverrides: config.identityOverrides,
    defaults: {
      limits: {
        ...(config.defaults.cpu === undefined ? {} : { cpu: config.defaults.cpu }),
        ...(config.defaults.memoryBytes === undefined ? {} : { memoryBytes: config.defaults.memoryBytes }),
        ...(config.defaults.pids === undefined ? {} : { pids: config.defaults.pids }),
      },
      ...(config.defaults.logMaxBytes === undefined ? {} : { logMaxBytes: config.defaults.logMaxBytes }),
      ...(config.defaults.stopGraceMs === undefined ? {} : { stopGraceMs: config.defaults.stopGraceMs }),
      isolation: policy.defaults,
    },
    users: { dynamicUids: config.dynamicUids },
    scratch: { ...(config.scratch.root === null ? {} : { root: config.scratch.root }), keep: config.scratch.keep },
    hiddenPaths: hidden.hide,
    retention: config.retention,
    ...(config.maxRunningJobs === undefined ? {} : { maxRunningJobs: config.maxRunningJobs }),
    warn: (message, details) => logger.warn(message, details),
  });
  const recovery = worker.recovery;
  if (recovery.lost.length + recovery.orphanCgroupsRemoved.length + recovery.incompleteStartsRemoved.length > 0) {
    logger.warn('recovered after an unclean stop', {
      lostJobs: recovery.lost,
      orphanCgroupsRemoved: recovery.orphanCgroupsRemoved,
      incompleteStartsRemoved: recovery.incompleteStartsRemoved,
    });
  }

  let server: JobworkerServer;
  let metrics: MetricsListener | null = null;
  let fleet: Fleet | null = null;
  // The dev certificate names localhost, 127.0.0.1 and ::1: on the loopback, the dev daemon answers
  // on both (localhost may resolve to ::1 first), on the same port.
  const listenOn = splitHostPort(config.listen, 'listen');
  const devLoopback = options.dev && (listenOn.host === '127.0.0.1' || listenOn.host === 'localhost');
  let addresses = devLoopback ? [`127.0.0.1:${listenOn.port}`, `[::1]:${listenOn.port}`] : [config.listen];
  try {
    const tls = config.tls;
    const serve = (listen: string[]) =>
      JobworkerServer.start({
        worker,
        tls,
        listen,
        logger,
        ...(config.maxStreamsPerIdentity === undefined ? {} : { maxStreamsPerIdentity: config.maxStreamsPerIdentity }),
        ...(config.maxUnreadWatchJobs === undefined ? {} : { maxUnreadWatchJobs: config.maxUnreadWatchJobs }),
        ...(config.metricsIdentities === undefined ? {} : { metricsIdentities: config.metricsIdentities }),
        connections: config.connections,
        fileDescriptors: config.fileDescriptors,
        logScans: config.logScans,
        policy,
        ...(config.refusalLogIntervalMs === undefined ? {} : { refusalLogIntervalMs: config.refusalLogIntervalMs }),
      });
    try {
      server = await serve(addresses).catch((error: unknown) => {
        // A host without IPv6: loopback is 127.0.0.1 alone.
        if (!devLoopback || !(error instanceof ListenError) || !['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes(error.code ?? '')) throw error;
        logger.warn('no IPv6 loopback; serving on 127.0.0.1 only', { error: error.message });
        addresses = [config.listen];
        return serve(addresses);
      });
    } catch (error) {
      throw error instanceof ListenError ? listenErrorWithFix(error, 'grpc', options.dev) : error;
    }
    try {
      if (config.fleet !== null) {
        fleet = await joinFleet(config.fleet, worker, logger, config, server.port);
        server.attachFleet(fleet);
      }
      if (config.metricsListen !== null) {
        try {
          metrics = await MetricsListener.start(server.metrics, config.metricsListen, { isJobUid: (uid) => worker.dynamicUids.contains(uid) });
        } catch (error) {
          throw error instanceof ListenError ? listenErrorWithFix(error, 'metrics', options.dev) : error;
        }
      }
    } catch (error) {
      await fleet?.close();
      await server.shutdown(0);
      throw error;
    }
  } catch (error) {
    await worker.close({ stopJobs: true, graceMs: 0 });
    throw error;
  }
  logger.info('serving', {
    listen: `${splitHostPort(config.listen, 'listen').host}:${server.port}`,
    addresses: addresses.map((address) => address.replace(/:\d+$/, `:${server.port}`)),
    metrics: metrics === null ? null : `${config.metricsListen?.replace(/:\d+$/, '')}:${metrics.port}`,
  });
  // Node raised the soft RLIMIT_NOFILE to the hard limit at start-up; the budget is what is left
  // after what the daemon keeps for itself (src/server/fd-budget.ts).
  const nofile = openFilesLimit();
  const fdFigures = { soft: nofile.soft, hard: nofile.hard, budget: server.fds.total, keptForDaemon: server.fds.reserved };
  if (nofile.soft < nofile.hard) logger.warn('open files limit below its hard limit', fdFigures);
  else logger.info('open files limit', fdFigures);
  const mib = (bytes: number) => Math.round(bytes / 1048576);
  const idleMemory = new IdleMemoryReleaser({
    onError: (task, error, failures) => logger.error('periodic task failed; it runs again at its next tick', { task, failures, error: error instanceof Error ? error.message : String(error) }),
    onRelease: (before, after, reason) =>
      logger.debug('released memory grown in a burst', { reason, rssMiB: `${mib(before.rss)} → ${mib(after.rss)}`, heapMiB: `${mib(before.heapTotal)} → ${mib(after.heapTotal)}`, liveHeapMiB: mib(after.heapUsed) }),
  });

  let stopping: Promise<void> | null = null;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info('shutting down', { reason, stopJobs: config.shutdown.stopJobs, runningJobs: worker.runningJobs });
      idleMemory.stop();
      await server.shutdown(Math.min(config.shutdown.graceMs, 5000));
      await metrics?.close();
      await fleet?.stopTaking();
      const results = await worker.close({ stopJobs: config.shutdown.stopJobs, graceMs: config.shutdown.graceMs });
      await fleet?.close(); // after the Worker: the stopped jobs' records are written first
      logger.info('stopped', { jobsStopped: results.filter((r) => !r.alreadyFinished).length });
    })();
    return stopping;
  };
  const announceReady = () =>
    logger.info('ready', {
      stateDir: config.stateDir,
      cgroupMode: worker.cgroupDriver.mode,
      cgroupRoot: worker.cgroupDriver.jobsRoot,
      scratchRoot: worker.scratch.root,
      dynamicUids: `${worker.dynamicUids.range.first}..${worker.dynamicUids.range.first + worker.dynamicUids.range.count - 1}`,
      mappedIdentities: policy.identityUsers.size,
      pid: process.pid,
    });
  return { server, metrics, worker, fleet, logger, shutdown, announceReady };
}

function checkFleetConfig(fleet: FleetConfig): void {
  fleet.pools.forEach((pool, i) => checkPoolName(`fleet.pools[${i}]`, pool));
  if (fleet.host !== null) checkHostName('fleet.host', fleet.host);
  else checkHostName('fleet.host (the machine\'s host name; set fleet.host)', hostname());
}

/** Joins the fleet once the server listens: the address announced to clients needs its port. */
async function joinFleet(fleet: FleetConfig, worker: Worker, logger: Logger, config: DaemonConfig, port: number): Promise<Fleet> {
  const listenHost = splitHostPort(config.listen, 'listen').host;
  const advertised = fleet.advertise ?? (listenHost === '0.0.0.0' || listenHost === '::' ? hostname() : listenHost);
  const hasPort = /^(?:\[[^\]]+\]|[^:[\]]+):\d{1,5}$/.test(advertised);
  const address = hasPort ? advertised : `${advertised}:${port}`;
  return Fleet.start({
    worker,
    logger,
    nats: fleet.nats,
    host: fleet.host ?? hostname(),
    address,
    pools: fleet.pools,
    capacity: fleet.capacity,
    heartbeatTtlMs: fleet.heartbeatTtlMs,
    defaults: {
      ...(config.defaults.memoryBytes === undefined ? {} : { memoryBytes: config.defaults.memoryBytes }),
      ...(config.defaults.cpu === undefined ? {} : { cpu: config.defaults.cpu }),
    },
  });
}

/** A listener that could not open, with the settings that move it (and, for metrics, turn it off). */
function listenErrorWithFix(error: ListenError, which: 'grpc' | 'metrics', dev: boolean): JobworkerError {
  const inUse = error.code === 'EADDRINUSE';
  let fix: string;
  if (which === 'grpc') {
    const who = dev ? 'another job-worker --dev (`npm start`)' : 'another job-worker';
    fix = `${inUse ? `the port is taken (${who}, or another program); ` : ''}choose the address with --listen HOST:PORT, JOBWORKER_LISTEN or "listen" in the config file`;
  } else {
    fix = `${inUse ? 'the port is taken; ' : ''}choose the address with --metrics-listen HOST:PORT, JOBWORKER_METRICS_LISTEN or "metricsListen" in the config file, or turn metrics off with --metrics-listen off`;
  }
  return new JobworkerError('unavailable', `${error.message}; ${fix}`, { cause: error });
}
