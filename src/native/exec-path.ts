// Which files to try for a command, in order, as execvp(3) would: a name with a slash is used as
// given; otherwise each PATH entry in turn (an empty entry means the working directory).

import { DEFAULT_JOB_PATH } from '../job-path';

/** PATH when the job's environment has none. */
export const DEFAULT_PATH = DEFAULT_JOB_PATH;

export function execCandidates(command: string, pathVariable: string | undefined): string[] {
  if (command.includes('/')) return [command];
  const entries = (pathVariable ?? DEFAULT_PATH).split(':');
  return entries.map((dir) => (dir === '' ? command : `${dir.replace(/\/+$/, '')}/${command}`));
}
