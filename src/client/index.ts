export { ClientError, JobworkerClient, type ConnectOptions } from './client';
export { createChannelCredentials, loadChannelCredentials } from './credentials';
export type { ServingStatus } from './health';
