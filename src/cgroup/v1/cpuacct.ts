// cgroup v1 cpuacct controller: CPU usage, on hosts without a cgroup2 hierarchy (where the unified
// cpu.stat gives it instead). Nanoseconds here, microseconds in CgroupStats.
import * as path from 'node:path';

import { parseSingleNumber, readControl, readOptionalControl, type CgroupFs } from '../cgroup-fs';
import type { CgroupStats } from '../types';

export type CpuUsage = Pick<CgroupStats, 'cpuUsageMicros' | 'cpuUserMicros' | 'cpuSystemMicros'>;

export async function readCpuUsage(fs: CgroupFs, dir: string): Promise<CpuUsage> {
  const micros = (text: string | undefined, file: string): number =>
    text === undefined ? 0 : Math.floor(parseSingleNumber(text, path.join(dir, file)) / 1000);
  return {
    cpuUsageMicros: micros(await readControl(fs, dir, 'cpuacct.usage'), 'cpuacct.usage'),
    // usage_user/usage_sys: kernel >= 4.7.
    cpuUserMicros: micros(await readOptionalControl(fs, dir, 'cpuacct.usage_user'), 'cpuacct.usage_user'),
    cpuSystemMicros: micros(await readOptionalControl(fs, dir, 'cpuacct.usage_sys'), 'cpuacct.usage_sys'),
  };
}
