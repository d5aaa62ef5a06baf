// The package's main export: the Worker library (docs/library.md).
export * from './worker';
export { JobworkerError, ValidationError, NotFoundError, SystemError, type ErrorKind } from './errors';
export { SpawnError } from './native';
export type { Limits, IoLimit, CgroupStats, IoDeviceStats } from './cgroup/types';
export type { LogRecord } from './logs/reader';
export type { StreamName } from './logs/format';
