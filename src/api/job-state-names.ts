// The names of a job's states, without the protobuf enum (./job-state.ts maps them): what a client
// needs before it loads the generated code (job-cli's start-up, issue 17).
export const JOB_STATE_NAMES = ['queued', 'starting', 'running', 'exited', 'failed', 'stopped', 'lost'] as const;

export type JobStateName = (typeof JOB_STATE_NAMES)[number];
