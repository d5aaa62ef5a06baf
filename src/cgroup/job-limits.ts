// What every driver does before writing a limit: validate it, check the host has the controller it
// needs, resolve disk devices. Shared by the v2 and v1 drivers.
import { availableParallelism } from 'node:os';

import { JobworkerError, ValidationError } from '../errors';
import { resolveIoLimits } from './devices';
import { resolvedLimits, validateLimits, type ResolvedLimits } from './limits';
import { DEFAULT_PIDS_MAX, type CgroupMode, type Limits, type ResourceController } from './types';

export const RESOURCE_CONTROLLERS: readonly ResourceController[] = ['cpu', 'memory', 'io', 'pids'];

function requireController(available: ReadonlySet<ResourceController>, controller: ResourceController, field: string): void {
  if (!available.has(controller)) {
    throw new ValidationError(field, `the ${controller} controller is not available on this host`, { kind: 'failed-precondition' });
  }
}

/**
 * Validates a job's `limits` for a host with `available` controllers and resolves its devices against
 * `cwd`. Within its identity's `slice`: no limit above the slice's (it could never be reached), and
 * the pids default no higher than the slice's pids.
 */
export async function prepareLimits(
  limits: Limits,
  cwd: string,
  available: ReadonlySet<ResourceController>,
  sysRoot: string | undefined,
  slice: ResolvedLimits = { io: [] },
): Promise<ResolvedLimits> {
  validateLimits(limits);
  checkWithinSlice(limits, slice);
  checkControllers(limits, available);
  const io = await resolveIoLimits(limits.io, cwd, { fromClient: true, ...(sysRoot === undefined ? {} : { sysRoot }) });
  return resolvedLimits(limits, io, Math.min(DEFAULT_PIDS_MAX, slice.pids ?? DEFAULT_PIDS_MAX));
}

/**
 * Validates an identity's slice limits and resolves their devices, which must be named (a slice has
 * no working directory). Errors name the field under `field` ("identityLimits.memoryBytes"). On a
 * cgroup v1 host (`mode` hybrid or legacy) IO limits are refused: v1 blkio throttles each cgroup's
 * own IO only, never its children's (the kernel keeps throttling flat outside cgroup v2), so a slice
 * could not bound its jobs' IO together (measured: 131 MB/s through a 4 MB/s slice).
 */
export async function prepareSliceLimits(
  limits: Limits,
  field: string,
  available: ReadonlySet<ResourceController>,
  sysRoot: string | undefined,
  mode: CgroupMode,
): Promise<ResolvedLimits> {
  try {
    validateLimits(limits);
    if (mode !== 'unified' && limits.io !== undefined && limits.io.length > 0) {
      throw new JobworkerError(
        'failed-precondition',
        `limits.io: an identity's IO limit needs cgroup v2 (this host is ${mode}: cgroup v1 blkio throttles each job's own IO, not its jobs' together); set IO limits per job instead`,
      );
    }
    (limits.io ?? []).forEach((io, index) => {
      if (io.device === undefined) throw new ValidationError(`limits.io[${index}].device`, 'is required for an identity (its jobs have no one working directory)');
    });
    checkControllers(limits, available);
    const io = await resolveIoLimits(limits.io, '/', sysRoot === undefined ? {} : { sysRoot });
    return resolvedLimits(limits, io, null);
  } catch (error) {
    if (error instanceof ValidationError) throw new ValidationError(error.field.replace(/^limits/, field), error.message.slice(error.field.length + 2));
    if (error instanceof JobworkerError) throw new JobworkerError(error.kind, error.message.replace(/^limits/, field), { cause: error });
    throw error;
  }
}

function checkWithinSlice(limits: Limits, slice: ResolvedLimits): void {
  const within = (field: string, value: number | undefined, quota: number | undefined, what: string): void => {
    if (value !== undefined && quota !== undefined && value > quota) {
      throw new ValidationError(field, `must be at most ${quota}, its identity's ${what} quota (all its jobs together), got ${value}`);
    }
  };
  within('limits.cpu', limits.cpu, slice.cpu, 'CPU');
  within('limits.memoryBytes', limits.memoryBytes, slice.memoryBytes, 'memory');
  within('limits.memoryHighBytes', limits.memoryHighBytes, slice.memoryBytes, 'memory');
  within('limits.pids', limits.pids, slice.pids, 'pids');
}

function checkControllers(limits: Limits, available: ReadonlySet<ResourceController>): void {
  if (limits.cpu !== undefined) {
    requireController(available, 'cpu', 'limits.cpu');
    // Like `docker run --cpus`: a quota above the CPUs there are limits nothing and is a mistake.
    const cpus = availableParallelism();
    if (limits.cpu > cpus) throw new ValidationError('limits.cpu', `must be at most ${cpus} (the CPUs of this host), got ${limits.cpu}`);
  }
  if (limits.cpuWeight !== undefined) requireController(available, 'cpu', 'limits.cpuWeight');
  if (limits.memoryBytes !== undefined) requireController(available, 'memory', 'limits.memoryBytes');
  if (limits.memoryHighBytes !== undefined) requireController(available, 'memory', 'limits.memoryHighBytes');
  if (limits.pids !== undefined) requireController(available, 'pids', 'limits.pids');
  if (limits.io !== undefined && limits.io.length > 0) requireController(available, 'io', 'limits.io');
}
