// What every driver does before writing a limit: validate it, check the host has the controller it
// needs, resolve disk devices. Shared by the v2 and v1 drivers.
import { availableParallelism } from 'node:os';

import { ValidationError } from '../errors';
import { resolveIoLimits } from './devices';
import { resolvedLimits, validateLimits, type ResolvedLimits } from './limits';
import type { Limits, ResourceController } from './types';

export const RESOURCE_CONTROLLERS: readonly ResourceController[] = ['cpu', 'memory', 'io', 'pids'];

function requireController(available: ReadonlySet<ResourceController>, controller: ResourceController, field: string): void {
  if (!available.has(controller)) {
    throw new ValidationError(field, `the ${controller} controller is not available on this host`, { kind: 'failed-precondition' });
  }
}

/** Validates `limits` for a host with `available` controllers and resolves its devices against `cwd`. */
export async function prepareLimits(
  limits: Limits,
  cwd: string,
  available: ReadonlySet<ResourceController>,
  sysRoot: string | undefined,
): Promise<ResolvedLimits> {
  validateLimits(limits);
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
  const io = await resolveIoLimits(limits.io, cwd, sysRoot === undefined ? {} : { sysRoot });
  return resolvedLimits(limits, io);
}
