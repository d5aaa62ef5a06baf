// The client's face for job-cli and other programs: the connection, what it takes and answers
// with (plain objects, no generated types), and what those are checked against.
export { REQUEST_BOUNDS } from '../api/request-bounds';
export { JobworkerClient, type ConnectOptions } from './client';
export { ClientError, StatusCode } from './client-error';
export { createChannelCredentials, loadChannelCredentials } from './credentials';
export type { ServingStatus } from './health';
export type {
  IoLimitRequest,
  LimitsRequest,
  ListJobsRequest,
  StartJobRequest,
  StopJobOptions,
  StreamLogsOptions,
  StreamLogsRequest,
  WatchJobsRequest,
} from './requests';
export {
  JOB_STATE_NAMES,
  type IdentityUsageView,
  type IoLimitView,
  type IoStatsView,
  type IsolationView,
  type MountView,
  type NamespaceViewName,
  type NetworkName,
  type UserKindName,
  type JobChangeView,
  type JobOutcomeView,
  type JobPageView,
  type JobStateName,
  type JobUserView,
  type JobView,
  type LimitsView,
  type LogChunkView,
  type LogInfoView,
  type LogMessageView,
  type LogStreamName,
  type OutputStreamName,
  type PoolPlacementView,
  type StatsView,
  type StopResultView,
} from './views';
