// Checking a job's limits before anything touches the kernel. Pure: the server calls it on every
// request, the drivers rely on it having been called (they check again, cheaply, in create()).
import { describeBytes, formatBytes } from '../byte-size';
import { ValidationError } from '../errors';
import { DEFAULT_PIDS_MAX, type IoLimit, type Limits } from './types';

/** The CFS period we use everywhere (the kernel's default): quota = cpus × period. */
export const CPU_PERIOD_MICROS = 100_000;
/** The kernel refuses a quota below 1 ms per period; at our period that is 0.01 CPU. */
export const MIN_CPU = 0.01;
export const MAX_CPU = 1024;
/** Below this a job cannot even start a shell; the kernel would accept it, the user would not mean it. */
export const MIN_MEMORY_BYTES = 1024 * 1024;
/** PID_MAX_LIMIT on 64-bit kernels. */
export const MAX_PIDS = 4_194_304;
/** One page per second: less cannot complete a single IO in reasonable time. */
export const MIN_IO_BPS = 4096;
export const MAX_IO_DEVICES = 16;

/** A disk limit with its device resolved to the whole disk. */
export interface DeviceIoLimit {
  /** "MAJ:MIN" of the whole disk. */
  device: string;
  readBps?: number;
  writeBps?: number;
  readIops?: number;
  writeIops?: number;
}

/**
 * What the drivers write: limits validated, devices resolved; for a job, the pids default applied
 * (a job always has a pids.max; an identity's slice has one only if configured).
 */
export interface ResolvedLimits {
  cpu?: number;
  cpuWeight?: number;
  memoryBytes?: number;
  memoryHighBytes?: number;
  pids?: number;
  io: DeviceIoLimit[];
}

/** How a quantity reads in a message. */
type Describe = (value: number) => string;
const plain: Describe = (value) => String(value);
const cpus: Describe = (value) => `${value} CPU${value === 1 ? '' : 's'}`;
const perSecond: Describe = (value) => (value < 1024 ? `${value} bytes/s` : `${formatBytes(value)}/s (${value} bytes/s)`);

function checkNumber(field: string, value: unknown, min: number, max: number, integer: boolean, describe: Describe = plain): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ValidationError(field, 'must be a finite number');
  if (integer && !Number.isInteger(value)) throw new ValidationError(field, 'must be a whole number');
  if (value < min || value > max) {
    // The top of a 2^53−1 range is no limit anyone sets: say only the bottom of it.
    const range = max >= Number.MAX_SAFE_INTEGER ? `must be at least ${describe(min)}` : `must be between ${describe(min)} and ${describe(max)}`;
    throw new ValidationError(field, `${range}, got ${describe(value)}`);
  }
}

/** PATH_MAX less its NUL: no longer path can be looked up. */
const MAX_DEVICE_CHARS = 4095;

const IO_RATES = ['readBps', 'writeBps', 'readIops', 'writeIops'] as const;

function validateIoLimit(field: string, limit: IoLimit): void {
  if (typeof limit !== 'object' || limit === null) throw new ValidationError(field, 'must be an object');
  if (limit.device !== undefined) {
    if (typeof limit.device !== 'string' || limit.device === '') throw new ValidationError(`${field}.device`, 'must be a non-empty string');
    if (limit.device.includes('\0')) throw new ValidationError(`${field}.device`, 'must not contain NUL bytes');
    if (limit.device.length > MAX_DEVICE_CHARS) throw new ValidationError(`${field}.device`, `must be at most ${MAX_DEVICE_CHARS} characters (a path), got ${limit.device.length}`);
    if (!/^\d+:\d+$/.test(limit.device) && !limit.device.startsWith('/')) {
      throw new ValidationError(`${field}.device`, `must be an absolute path or MAJ:MIN, got ${JSON.stringify(limit.device)}`);
    }
  }
  let rates = 0;
  for (const rate of IO_RATES) {
    const value = limit[rate];
    if (value === undefined) continue;
    rates++;
    const isBytes = rate.endsWith('Bps');
    checkNumber(`${field}.${rate}`, value, isBytes ? MIN_IO_BPS : 1, Number.MAX_SAFE_INTEGER, true, isBytes ? perSecond : plain);
  }
  if (rates === 0) {
    const names = IO_RATES.map((rate) => `${field}.${rate}`);
    throw new ValidationError(field, `needs at least one rate: ${names.join(', ')}`, { related: names });
  }
}

/** Throws a ValidationError naming the field (e.g. `limits.memoryBytes`) for anything out of range. */
export function validateLimits(limits: Limits): void {
  if (typeof limits !== 'object' || limits === null) throw new ValidationError('limits', 'must be an object');
  if (limits.cpu !== undefined) checkNumber('limits.cpu', limits.cpu, MIN_CPU, MAX_CPU, false, cpus);
  if (limits.cpuWeight !== undefined) checkNumber('limits.cpuWeight', limits.cpuWeight, 1, 10_000, true);
  if (limits.memoryBytes !== undefined) {
    checkNumber('limits.memoryBytes', limits.memoryBytes, MIN_MEMORY_BYTES, Number.MAX_SAFE_INTEGER, true, describeBytes);
  }
  if (limits.memoryHighBytes !== undefined) {
    checkNumber('limits.memoryHighBytes', limits.memoryHighBytes, MIN_MEMORY_BYTES, Number.MAX_SAFE_INTEGER, true, describeBytes);
    if (limits.memoryBytes !== undefined && limits.memoryHighBytes > limits.memoryBytes) {
      throw new ValidationError(
        'limits.memoryHighBytes',
        `must not exceed the hard limit limits.memoryBytes (${describeBytes(limits.memoryBytes)}), got ${describeBytes(limits.memoryHighBytes)}`,
        { related: ['limits.memoryBytes'] },
      );
    }
  }
  if (limits.pids !== undefined) checkNumber('limits.pids', limits.pids, 1, MAX_PIDS, true);
  if (limits.io !== undefined) {
    if (!Array.isArray(limits.io)) throw new ValidationError('limits.io', 'must be a list');
    if (limits.io.length > MAX_IO_DEVICES) throw new ValidationError('limits.io', `at most ${MAX_IO_DEVICES} devices`);
    limits.io.forEach((limit, index) => validateIoLimit(`limits.io[${index}]`, limit));
  }
}

/** The CPU quota per CFS period, in microseconds. */
export function cpuQuotaMicros(cpus: number): number {
  return Math.round(cpus * CPU_PERIOD_MICROS);
}

/**
 * Applies defaults to validated limits whose devices are already resolved (see devices.ts).
 * `defaultPids`: a job's pids.max when it sets none; null: none (an identity's slice).
 */
export function resolvedLimits(limits: Limits, io: DeviceIoLimit[], defaultPids: number | null = DEFAULT_PIDS_MAX): ResolvedLimits {
  const resolved: ResolvedLimits = { io };
  const pids = limits.pids ?? defaultPids;
  if (pids !== null) resolved.pids = pids;
  if (limits.cpu !== undefined) resolved.cpu = limits.cpu;
  if (limits.cpuWeight !== undefined) resolved.cpuWeight = limits.cpuWeight;
  if (limits.memoryBytes !== undefined) resolved.memoryBytes = limits.memoryBytes;
  if (limits.memoryHighBytes !== undefined) resolved.memoryHighBytes = limits.memoryHighBytes;
  return resolved;
}
