// cgroup v2 pids controller (the same files as v1's): a cap on processes and threads, always set.
import * as path from 'node:path';

import { parseSingleNumber, readControl, type CgroupFs, type ControlWrite } from '../cgroup-fs';
import type { ResolvedLimits } from '../limits';

export function pidsWrites(limits: ResolvedLimits): ControlWrite[] {
  return [{ file: 'pids.max', value: String(limits.pids) }];
}

export async function readPidsCurrent(fs: CgroupFs, dir: string): Promise<number> {
  return parseSingleNumber(await readControl(fs, dir, 'pids.current'), path.join(dir, 'pids.current'));
}
