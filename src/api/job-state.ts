// Job states on the wire: the one table between their names and the protobuf enum, for the server
// (which sends them) and the client (which reads them). The names are the Worker's own states
// (src/worker/job-state.ts), plus `queued`, which only pool jobs have (src/fleet); the server's
// convert.ts fails to compile if the lists part.
import { JobState as PbJobState } from '../gen/jobworker/v1/jobworker';
import { JOB_STATE_NAMES, type JobStateName } from './job-state-names';

export { JOB_STATE_NAMES, type JobStateName } from './job-state-names';

const TO_PB: Readonly<Record<JobStateName, PbJobState>> = {
  queued: PbJobState.JOB_STATE_QUEUED,
  starting: PbJobState.JOB_STATE_STARTING,
  running: PbJobState.JOB_STATE_RUNNING,
  exited: PbJobState.JOB_STATE_EXITED,
  failed: PbJobState.JOB_STATE_FAILED,
  stopped: PbJobState.JOB_STATE_STOPPED,
  lost: PbJobState.JOB_STATE_LOST,
};

const FROM_PB = new Map<PbJobState, JobStateName>(JOB_STATE_NAMES.map((name) => [TO_PB[name], name]));

export function jobStateToPb(state: JobStateName): PbJobState {
  return TO_PB[state];
}

/** undefined for values that name no state (UNSPECIFIED, numbers a newer peer may send). */
export function jobStateFromPb(value: PbJobState): JobStateName | undefined {
  return FROM_PB.get(value);
}
