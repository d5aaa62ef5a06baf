// Which cgroup a process is in, per hierarchy, from /proc/<pid>/cgroup.
import { readFileSync } from 'node:fs';

import { JobworkerError } from '../errors';

export interface ProcCgroupEntry {
  hierarchyId: number;
  /** Controllers bound to the hierarchy ("cpu,cpuacct", "name=systemd"); empty for cgroup v2. */
  controllers: string[];
  /** Path below the hierarchy's mount point, starting with "/". */
  path: string;
}

/** Parses /proc/<pid>/cgroup text ("hierarchy-id:controllers:path" per line). */
export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  const entries: ProcCgroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) throw new JobworkerError('internal', `unexpected /proc/<pid>/cgroup line: ${line}`);
    const controllers = line.slice(first + 1, second);
    entries.push({
      hierarchyId: Number(line.slice(0, first)),
      controllers: controllers === '' ? [] : controllers.split(','),
      path: line.slice(second + 1),
    });
  }
  return entries;
}

export function readProcCgroup(pid: number | 'self' = 'self'): ProcCgroupEntry[] {
  return parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
}

/** The cgroup v2 path of the process ("0::/…" line), or undefined on a pure v1 host. */
export function unifiedPathOf(entries: readonly ProcCgroupEntry[]): string | undefined {
  return entries.find((e) => e.hierarchyId === 0 && e.controllers.length === 0)?.path;
}

/** The path in the v1 hierarchy that has `controller` bound, or undefined. */
export function v1PathOf(entries: readonly ProcCgroupEntry[], controller: string): string | undefined {
  return entries.find((e) => e.hierarchyId !== 0 && e.controllers.includes(controller))?.path;
}
