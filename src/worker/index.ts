export { Worker, defaultRootName, defaultScratchRoot, type WorkerOptions, type WorkerDefaults, type RetentionPolicy, type ListFilter, type JobEvent, type IdentityUsage, type UserOptions, type ScratchOptions, type StartOptions } from './worker';
export { type IdentityLimits, hostDefaults, defaultJobMemoryBytes, hostFacts, type HostFacts } from './identity-policy';
export type { QuotaUsage } from './identity-ledger';
export type { RecoveryReport, StateDamage } from './recovery';
export type { CompactionPolicy, JournalStats } from './journal';
export { Job, type JobStatus, type StopOptions, type StopResult, type LogOptions, type LogHold } from './job';
export { CommandError, type CommandProblem } from './command-error';
export { type JobSpec, type JobNaming, type JobUserSpec, type JobUserChoice, type JobRunAs, SPEC_BOUNDS, DEFAULT_JOB_PATH, checkJobUser, resolveJobSpec } from './job-spec';
export { LABEL_BOUNDS, checkJobName, checkLabels, parseLabelSelector, matchesLabels, type LabelTerm } from './job-labels';
export { NAMESPACE_NAMES, ISOLATION_BOUNDS, type NamespaceName, type NetworkMode, type BindMount, type JobIsolationSpec, type JobIsolation, type IsolationDefaults } from './isolation';
export { DEFAULT_DYNAMIC_UID_RANGE, checkDynamicUidRange, type DynamicUidRange } from './dynamic-uids';
export { nssUserDatabase, type UserDatabase, type UserEntry, type GroupEntry } from './user-database';
export { type JobState, type JobOutcome, FINAL_STATES, isFinal } from './job-state';

// What the layers above (src/server, src/daemon, the package's main export) need from the ones
// below the Worker: they import it from here, never from src/cgroup, src/logs or src/native.
export type { Limits, IoLimit, CgroupStats, IoDeviceStats } from '../cgroup';
export { validateLimits } from '../cgroup';
export { CorruptLogError, FILE_HEADER_SIZE, type StreamName } from '../logs/format';
export type { LogRecord } from '../logs/reader';
export { SpawnError, trimNativeHeap } from '../native';
export { resolveRunAs } from './run-as';
