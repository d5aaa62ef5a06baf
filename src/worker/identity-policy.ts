// What each identity (a certificate name; "" for jobs without an owner) may use, all its jobs
// together: the limits its slice carries in the kernel (memory, pids, CPU, IO) and the quotas the
// Worker keeps (running jobs, log bytes on disk). Configured defaults, per-identity overrides, and
// where neither says, defaults from the host that keep one identity from taking it:
//
//   memoryBytes      half the host's memory: one identity leaves the other half to everyone else
//   pids             min(16384, pid_max / 4): 4,096 per job × a handful of jobs would reach pid_max
//   logBytes         a quarter of the state directory's filesystem: one writer cannot fill it
//   maxRunningJobs   1,024
//   cpu, io          none: slices have equal CPU weight, so under contention each identity gets an
//                    equal share whatever its number of jobs; a hard quota wastes idle CPU
//
// and a default memory limit per job: a quarter of the host's memory (at most the identity's), so a
// runaway job is OOM-killed alone before its identity's slice is full and its other jobs suffer.
import { readFileSync, statfsSync } from 'node:fs';
import { totalmem } from 'node:os';

import type { Limits } from '../cgroup';
import { ValidationError } from '../errors';

/** Limits and quotas of one identity: a slice's kernel limits plus the quotas the Worker keeps. */
export interface IdentityLimits extends Limits {
  /** Jobs of the identity running at once. */
  maxRunningJobs?: number;
  /** Bytes of the identity's logs on disk (running and retained finished jobs). */
  logBytes?: number;
}

/** The quotas kept by the Worker, resolved. */
export interface DaemonQuotas {
  maxRunningJobs: number;
  logBytes: number;
}

export interface IdentityPolicyOptions {
  /** For every identity; unset fields take the host defaults above. */
  defaults?: IdentityLimits;
  /** Per identity (its certificate name), over the defaults. */
  overrides?: Readonly<Record<string, IdentityLimits>>;
}

/** What the host defaults are computed from. */
export interface HostFacts {
  memoryBytes: number;
  pidMax: number;
  stateFsBytes: number;
}

const MIB = 1024 * 1024;
export const DEFAULT_MAX_RUNNING_JOBS_PER_IDENTITY = 1024;
export const MAX_IDENTITY_PIDS_DEFAULT = 16_384;
const QUOTA_KEYS = ['maxRunningJobs', 'logBytes'] as const;

export function hostFacts(stateDir: string): HostFacts {
  let pidMax = 32_768; // the kernel's own default
  try {
    pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()) || pidMax;
  } catch {
    // no /proc: the kernel default
  }
  const fs = statfsSync(stateDir);
  return { memoryBytes: totalmem(), pidMax, stateFsBytes: fs.blocks * fs.bsize };
}

function floorMiB(bytes: number): number {
  return Math.max(MIB, Math.floor(bytes / MIB) * MIB);
}

/** The host defaults (see the top of this file). Pure. */
export function hostDefaults(host: HostFacts): Required<Pick<IdentityLimits, 'memoryBytes' | 'pids' | 'maxRunningJobs' | 'logBytes'>> {
  return {
    memoryBytes: floorMiB(host.memoryBytes / 2),
    pids: Math.max(1, Math.min(MAX_IDENTITY_PIDS_DEFAULT, Math.floor(host.pidMax / 4))),
    maxRunningJobs: DEFAULT_MAX_RUNNING_JOBS_PER_IDENTITY,
    logBytes: floorMiB(host.stateFsBytes / 4),
  };
}

/** A job's default memory limit when neither it nor the configured defaults set one. Pure. */
export function defaultJobMemoryBytes(host: HostFacts): number {
  return floorMiB(host.memoryBytes / 4);
}

function checkQuotas(field: string, limits: IdentityLimits): void {
  if (typeof limits !== 'object' || limits === null) throw new ValidationError(field, 'must be an object');
  for (const key of QUOTA_KEYS) {
    const value = limits[key];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw new ValidationError(`${field}.${key}`, 'must be a whole number of at least 1');
  }
}

export class IdentityPolicy {
  readonly #defaults: IdentityLimits;
  readonly #overrides: ReadonlyMap<string, IdentityLimits>;

  /** Checks the quotas' shape (the kernel limits are checked by the cgroup layer: prepareSliceLimits). */
  constructor(options: IdentityPolicyOptions, host: HostFacts) {
    checkQuotas('identityLimits', options.defaults ?? {});
    for (const [identity, limits] of Object.entries(options.overrides ?? {})) checkQuotas(`identityOverrides[${JSON.stringify(identity)}]`, limits);
    this.#defaults = { ...hostDefaults(host), ...options.defaults };
    this.#overrides = new Map(Object.entries(options.overrides ?? {}));
  }

  /** Every configured set of limits, with the field that names it (for validation at open). */
  configured(): { field: string; limits: Limits }[] {
    return [
      { field: 'identityLimits', limits: kernelPart(this.#defaults) },
      ...[...this.#overrides].map(([identity]) => ({ field: `identityOverrides[${JSON.stringify(identity)}]`, limits: this.sliceLimits(identity) })),
    ];
  }

  limitsOf(identity: string): IdentityLimits {
    const override = this.#overrides.get(identity);
    return override === undefined ? this.#defaults : Object.assign({}, this.#defaults, override);
  }

  /** What the identity's slice carries in the kernel. */
  sliceLimits(identity: string): Limits {
    return kernelPart(this.limitsOf(identity));
  }

  quotas(identity: string): DaemonQuotas {
    const { maxRunningJobs, logBytes } = this.limitsOf(identity);
    return { maxRunningJobs: maxRunningJobs!, logBytes: logBytes! };
  }
}

function kernelPart(limits: IdentityLimits): Limits {
  const { maxRunningJobs: _running, logBytes: _logs, ...kernel } = limits;
  return kernel;
}
