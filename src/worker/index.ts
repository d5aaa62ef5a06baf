export { Worker, type WorkerOptions, type WorkerDefaults, type RetentionPolicy, type ListFilter, type JobEvent, type StartOptions } from './worker';
export type { RecoveryReport, StateDamage } from './recovery';
export type { CompactionPolicy, JournalStats } from './journal';
export { Job, type JobStatus, type StopOptions, type StopResult, type LogOptions } from './job';
export { type JobSpec, type JobUser, SPEC_BOUNDS, DEFAULT_JOB_PATH, resolveJobSpec } from './job-spec';
export { type JobState, type JobOutcome, FINAL_STATES, isFinal } from './job-state';

// What the layers above (src/server, src/daemon, the package's main export) need from the ones
// below the Worker: they import it from here, never from src/cgroup, src/logs or src/native.
export type { Limits, IoLimit, CgroupStats, IoDeviceStats } from '../cgroup';
export { validateLimits } from '../cgroup';
export { CorruptLogError, type StreamName } from '../logs/format';
export type { LogRecord } from '../logs/reader';
export { SpawnError, trimNativeHeap } from '../native';
