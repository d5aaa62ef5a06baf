// Copies of the parts of a job's record that status() hands out, so no caller can change the
// record through them. Field by field on purpose: a listing copies these for every job, and
// structuredClone costs microseconds each, while `{ ...a, b }` gives every copy a hidden class of its
// own in V8 (memory and megamorphic property access); Object.assign({}, a) does neither.

import { resourceStats } from '../resource-stats';
import type { CgroupStats, Limits } from '../cgroup';
import type { JobIsolation } from './isolation';
import type { JobRunAs } from './job-spec';
import type { JobOutcome } from './job-state';

export function copyLimits(limits: Limits): Limits {
  const copy: Limits = Object.assign({}, limits);
  if (limits.io !== undefined) copy.io = limits.io.map((io) => Object.assign({}, io));
  return copy;
}

export function copyRunAs(runAs: JobRunAs): JobRunAs {
  return { uid: runAs.uid, gid: runAs.gid, groups: [...runAs.groups], name: runAs.name, kind: runAs.kind };
}

export function copyIsolation(isolation: JobIsolation): JobIsolation {
  return {
    namespaces: Object.assign({}, isolation.namespaces),
    network: isolation.network,
    readOnlyRoot: isolation.readOnlyRoot,
    mounts: isolation.mounts.map((mount) => ({ source: mount.source, target: mount.target, readOnly: mount.readOnly })),
  };
}

/** Records written before `timedOut` existed lack it: false. */
export function copyOutcome(outcome: JobOutcome): JobOutcome {
  return {
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    oomKilled: outcome.oomKilled,
    stoppedBy: outcome.stoppedBy,
    timedOut: outcome.timedOut ?? false,
    reason: outcome.reason,
  };
}

export function copyStats(stats: CgroupStats): CgroupStats {
  return resourceStats(stats, stats, stats, stats.pidsCurrent, stats.io.map((io) => Object.assign({}, io)));
}
