// cgroup v2 pids controller (the same files as v1's): a cap on processes and threads, always set for a
// job (a default if it asks for none), for an identity's slice when configured.
import { childPath, parseSingleNumber, type ControlWrite, type StatsPart } from '../cgroup-fs';
import type { ResolvedLimits } from '../limits';

export function pidsWrites(limits: ResolvedLimits): ControlWrite[] {
  return limits.pids === undefined ? [] : [{ file: 'pids.max', value: String(limits.pids) }];
}

export const pidsStats: StatsPart<number> = {
  files: ['pids.current'],
  parse(files, dir) {
    const current = childPath(dir, 'pids.current');
    return parseSingleNumber(files.required(current), current);
  },
};
