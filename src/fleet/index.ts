// The fleet (docs/fleet.md): daemons that share pools of jobs through NATS JetStream. The server
// submits and reads pool jobs through Fleet; the daemon starts it when its config names NATS.
export { Fleet, MAX_RETRIES, type FleetOptions, type PoolJob, type PoolJobStatus, type PoolPlacement, type PoolSubmission } from './fleet';
export { checkHostName, checkPoolName } from './names';
export type { NatsSettings } from './nats-link';
export type { CapacityConfig } from './capacity';
export type { PoolJobState, PoolJobSpec } from './pool-record';
