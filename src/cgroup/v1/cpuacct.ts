// cgroup v1 cpuacct controller: CPU usage, on hosts without a cgroup2 hierarchy (where the unified
// cpu.stat gives it instead). Nanoseconds here, microseconds in CgroupStats.
import { childPath, parseSingleNumber, type StatsPart } from '../cgroup-fs';
import type { CgroupStats } from '../types';

export type CpuUsage = Pick<CgroupStats, 'cpuUsageMicros' | 'cpuUserMicros' | 'cpuSystemMicros'>;

export const cpuUsage: StatsPart<CpuUsage> = {
  files: ['cpuacct.usage', 'cpuacct.usage_user', 'cpuacct.usage_sys'],
  parse(files, dir) {
    const micros = (name: string, text: string | undefined): number =>
      text === undefined ? 0 : Math.floor(parseSingleNumber(text, childPath(dir, name)) / 1000);
    return {
      cpuUsageMicros: micros('cpuacct.usage', files.required(childPath(dir, 'cpuacct.usage'))),
      // usage_user/usage_sys: kernel >= 4.7.
      cpuUserMicros: micros('cpuacct.usage_user', files.optional(childPath(dir, 'cpuacct.usage_user'))),
      cpuSystemMicros: micros('cpuacct.usage_sys', files.optional(childPath(dir, 'cpuacct.usage_sys'))),
    };
  },
};
