// The daemon process (bin/job-worker → src/cli/job-worker → here): its configuration, start-up and
// shutdown, signals and listeners, above the gRPC server (src/server) it runs.
export { applyEnvironment, applyFileConfig, defaultConfig, ENV_VARIABLES, readConfigFile, type DaemonConfig, type FileConfig } from './config';
export { startDaemon, type DaemonOptions, type RunningDaemon } from './daemon';
export { handleSignals } from './signals';
