export { Worker, type WorkerOptions, type WorkerDefaults, type RetentionPolicy, type ListFilter, type JobEvent } from './worker';
export { Job, type JobStatus, type StopOptions, type StopResult, type LogOptions } from './job';
export { type JobSpec, type JobUser, SPEC_BOUNDS, DEFAULT_JOB_PATH } from './job-spec';
export { type JobState, type JobOutcome, FINAL_STATES, isFinal } from './job-state';
