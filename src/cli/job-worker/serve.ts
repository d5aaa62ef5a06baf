import { Command, Option } from 'clipanion';

import { applyEnvironment, applyFileConfig, defaultConfig, ENV_VARIABLES, handleSignals, readConfigFile, startDaemon } from '../../daemon';
import { BaseCommand, flagError } from '../run';

export class ServeCommand extends BaseCommand {
  static override paths = [Command.Default, ['serve']];
  static override usage = Command.Usage({
    description: 'Run the job worker daemon',
    details: `
      Serves the jobworker gRPC API over mutual TLS 1.3. Settings come from built-in defaults, then
      the config file (--config, JSON), then environment variables (${Object.keys(ENV_VARIABLES).join(', ')}),
      then these flags. With --dev, a development PKI is made on first run (a CA, a server
      certificate for localhost and an admin client certificate installed where job-cli finds it)
      and state goes to ~/.local/state/jobworker/dev.

      SIGTERM or SIGINT: stop serving, stop running jobs (unless --leave-jobs-running), exit.
      SIGHUP: reload the TLS files; jobs and connections are kept.
    `,
    examples: [
      ['Development: serve on 127.0.0.1:50051 and [::1]:50051 with generated certificates', '$0 --dev'],
      ['A second dev daemon beside the first, without metrics', '$0 --dev --listen 127.0.0.1:50052 --state-dir /tmp/jobworker-2 --metrics-listen off'],
      ['Production, from a config file', '$0 --config /etc/jobworker/config.json'],
      ['Production, with flags', '$0 --listen 0.0.0.0:50051 --state-dir /var/lib/jobworker --tls-ca /etc/jobworker/ca.pem --tls-cert /etc/jobworker/server.pem --tls-key /etc/jobworker/server-key.pem'],
    ],
  });

  config = Option.String('--config', { description: 'JSON config file' });
  dev = Option.Boolean('--dev', false, { description: 'development mode: generated certificates, per-user state' });
  listen = Option.String('--listen', { description: 'gRPC address, HOST:PORT (default 127.0.0.1:50051; with --dev, a 127.0.0.1 address is served on [::1] too)' });
  metricsListen = Option.String('--metrics-listen', { description: 'Prometheus metrics address, HOST:PORT, or "off" for none (default 127.0.0.1:9464)' });
  stateDir = Option.String('--state-dir', { description: 'job records and logs (default /var/lib/jobworker)' });
  cgroupRoot = Option.String('--cgroup-root', { description: 'delegated cgroup path for jobs (default: beneath our own cgroup)' });
  tlsCa = Option.String('--tls-ca', { description: 'CA certificate (PEM) that client certificates must chain to' });
  tlsCert = Option.String('--tls-cert', { description: 'server certificate (PEM)' });
  tlsKey = Option.String('--tls-key', { description: 'server private key (PEM, mode 0600)' });
  logLevel = Option.String('--log-level', { description: 'debug, info, warn or error' });
  logFormat = Option.String('--log-format', { description: 'json or text (default: text on a terminal, json otherwise)' });
  leaveJobsRunning = Option.Boolean('--leave-jobs-running', false, { description: 'on shutdown, leave jobs running (the next start recovers them as lost)' });

  async run(): Promise<number> {
    let config = defaultConfig();
    if (this.config !== undefined) config = applyFileConfig(config, readConfigFile(this.config));
    const fromEnv = (name: string) => process.env[name] !== undefined && process.env[name] !== '';
    config = applyEnvironment(config, process.env);
    if (this.listen !== undefined) config.listen = this.listen;
    if (this.metricsListen !== undefined) config.metricsListen = this.metricsListen === 'off' ? null : this.metricsListen;
    if (this.stateDir !== undefined) config.stateDir = this.stateDir;
    if (this.cgroupRoot !== undefined) config.cgroupRoot = this.cgroupRoot;
    const tlsFlags = [this.tlsCa, this.tlsCert, this.tlsKey];
    if (tlsFlags.some((v) => v !== undefined)) {
      if (tlsFlags.some((v) => v === undefined)) throw flagError('--tls-ca', '--tls-ca, --tls-cert and --tls-key go together');
      config.tls = { caPath: this.tlsCa!, certificatePath: this.tlsCert!, privateKeyPath: this.tlsKey! };
    }
    if (this.logLevel !== undefined) {
      if (!['debug', 'info', 'warn', 'error'].includes(this.logLevel)) throw flagError('--log-level', `expected debug, info, warn or error, got ${this.logLevel}`);
      config.log.level = this.logLevel as typeof config.log.level;
    }
    if (this.logFormat !== undefined) {
      if (this.logFormat !== 'json' && this.logFormat !== 'text') throw flagError('--log-format', `expected json or text, got ${this.logFormat}`);
      config.log.format = this.logFormat;
    }
    if (this.leaveJobsRunning) config.shutdown.stopJobs = false;
    const fileConfig = this.config === undefined ? undefined : readConfigFile(this.config);

    const daemon = await startDaemon({
      config,
      dev: this.dev,
      configFile: this.config ?? null,
      explicit: {
        stateDir: this.stateDir !== undefined || fromEnv('JOBWORKER_STATE_DIR') || fileConfig?.stateDir !== undefined,
        tls: config.tls !== null,
      },
    });
    handleSignals(daemon);
    daemon.announceReady();
    await new Promise<never>(() => undefined); // serve until a signal ends the process
    return 0;
  }
}
