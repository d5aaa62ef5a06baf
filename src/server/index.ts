// The server's face for the daemon (src/daemon): the gRPC server and what starting it needs.
export { JobworkerServer, ListenError, splitHostPort, type JobworkerServerOptions } from './server';
export { openFilesLimit } from './fd-budget';
export type { ServerMetrics } from './metrics';
export { DEFAULT_JOB_POLICY, type JobPolicy, type IsolationOptOuts } from './isolation-policy';
