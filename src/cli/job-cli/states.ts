// The --state flag of the commands that filter jobs by state (list, events).
import type { JobStateName } from '../../client';
import { JOB_STATE_NAMES } from '../../client/basics';
import { flagError } from '../run';

export const STATE_FLAG_DESCRIPTION = `(repeatable or comma-separated): ${JOB_STATE_NAMES.join(', ')}`;

/** The states named by --state values ("failed,stopped", "RUNNING"), each once; none given: []. */
export function parseStates(values: readonly string[] | undefined): JobStateName[] {
  const given = (values ?? []).flatMap((value) => value.split(',')).map((value) => value.trim().toLowerCase()).filter((value) => value !== '');
  for (const state of given) {
    if (!(JOB_STATE_NAMES as readonly string[]).includes(state)) throw flagError('--state', `unknown state ${JSON.stringify(state)}; expected ${JOB_STATE_NAMES.join(', ')}`);
  }
  return [...new Set(given as JobStateName[])];
}
