// Turning what a user names as "the disk" (a device node, a partition, MAJ:MIN, or any path) into
// the MAJ:MIN of the whole disk that io.max / blkio.throttle.* understand. As systemd does, a
// partition is mapped to its parent disk through /sys/dev/block; virtual devices (loop, zram,
// device-mapper…) are refused, since throttling them limits nothing real or double-counts.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { errorCode, systemError, ValidationError } from '../errors';
import type { DeviceIoLimit } from './limits';
import type { IoLimit } from './types';

export const DEFAULT_SYS_ROOT = '/sys';

export interface BlockDevice {
  major: number;
  minor: number;
  /** Kernel name of the whole disk ("vda", "nvme0n1"). */
  name: string;
}

export function deviceId(device: Pick<BlockDevice, 'major' | 'minor'>): string {
  return `${device.major}:${device.minor}`;
}

// glibc's gnu_dev_major/gnu_dev_minor; Node's stat gives the dev_t glibc's makedev() built.
export function splitDev(dev: bigint): { major: number; minor: number } {
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn & 0xffffffffn)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xffffffffn)),
  };
}

function virtualKind(name: string): string {
  if (name.startsWith('loop')) return 'a loop device';
  if (name.startsWith('zram')) return 'a compressed RAM disk (zram)';
  if (name.startsWith('ram')) return 'a RAM disk';
  if (name.startsWith('dm-')) return 'a device-mapper device (LVM, dm-crypt); name the disk beneath it';
  if (name.startsWith('md')) return 'a software RAID device; name one of its disks';
  if (name.startsWith('nbd')) return 'a network block device';
  return 'a virtual block device';
}

/**
 * Resolves MAJ:MIN to the whole physical disk, via sysfs. `what` begins the error messages: "8:1 is",
 * "/dev/sda1 is", "/data/x is on".
 */
async function wholeDisk(field: string, what: string, id: { major: number; minor: number }, sysRoot: string): Promise<BlockDevice> {
  const link = path.join(sysRoot, 'dev/block', deviceId(id));
  let real: string;
  try {
    real = await fsp.realpath(link);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw systemError('resolve', link, error);
    throw new ValidationError(
      field,
      what.endsWith(' on')
        ? `${what} device ${deviceId(id)}, which is not a block device (a virtual filesystem such as tmpfs, overlayfs or NFS): name a disk`
        : `${deviceId(id)} is not a block device known to this kernel (no ${link})`,
    );
  }
  let diskDir = real;
  if (await exists(path.join(real, 'partition'))) diskDir = path.dirname(real);
  const name = path.basename(diskDir);
  if (real.split(path.sep).includes('virtual')) {
    throw new ValidationError(field, `${what} ${name} (${deviceId(id)}), ${virtualKind(name)}: IO limits need a physical disk`);
  }
  const devFile = path.join(diskDir, 'dev');
  let dev: string;
  try {
    dev = (await fsp.readFile(devFile, 'utf8')).trim();
  } catch (error) {
    throw systemError('read', devFile, error);
  }
  const match = /^(\d+):(\d+)$/.exec(dev);
  if (match === null) throw systemError('parse', devFile, Object.assign(new Error(dev), { code: 'EINVAL' }));
  return { major: Number(match[1]), minor: Number(match[2]), name };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

export interface DeviceResolveOptions {
  /** Where sysfs is mounted (tests: a fake tree). Default /sys. */
  sysRoot?: string;
  /** For error messages: the request field that named the device. */
  field?: string;
}

/**
 * The whole disk behind `spec`: a block device node (/dev/vda1 → vda), "MAJ:MIN", or any other
 * absolute path (the disk its filesystem is on). Without `spec`, the disk behind `cwd`.
 */
export async function resolveBlockDevice(spec: string | undefined, cwd: string, options: DeviceResolveOptions = {}): Promise<BlockDevice> {
  const sysRoot = options.sysRoot ?? DEFAULT_SYS_ROOT;
  const field = options.field ?? 'device';
  const numeric = spec === undefined ? null : /^(\d+):(\d+)$/.exec(spec);
  if (numeric !== null) {
    return wholeDisk(field, `${spec} is`, { major: Number(numeric[1]), minor: Number(numeric[2]) }, sysRoot);
  }
  const target = spec ?? cwd;
  const what = spec === undefined ? `the working directory ${cwd} is on` : undefined;
  if (!path.isAbsolute(target)) throw new ValidationError(field, `must be an absolute path or MAJ:MIN, got ${JSON.stringify(target)}`);
  let stat;
  try {
    stat = await fsp.stat(target, { bigint: true });
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ValidationError(field, `${target} does not exist`);
    throw systemError('stat', target, error, code === 'EACCES' ? 'permission-denied' : 'internal');
  }
  if (stat.isBlockDevice()) return wholeDisk(field, what ?? `${target} is`, splitDev(stat.rdev), sysRoot);
  if (stat.isCharacterDevice()) throw new ValidationError(field, `${target} is a character device, not a block device`);
  return wholeDisk(field, what ?? `${target} is on`, splitDev(stat.dev), sysRoot);
}

/** Resolves each limit's device (default: the disk behind `cwd`); two limits on one disk are refused. */
export async function resolveIoLimits(io: readonly IoLimit[] | undefined, cwd: string, options: Omit<DeviceResolveOptions, 'field'> = {}): Promise<DeviceIoLimit[]> {
  const resolved: DeviceIoLimit[] = [];
  const seen = new Map<string, number>();
  for (const [index, limit] of (io ?? []).entries()) {
    const field = `limits.io[${index}].device`;
    const disk = await resolveBlockDevice(limit.device, cwd, { ...options, field });
    const id = deviceId(disk);
    const earlier = seen.get(id);
    if (earlier !== undefined) throw new ValidationError(field, `is the same disk (${disk.name}, ${id}) as limits.io[${earlier}]`);
    seen.set(id, index);
    const entry: DeviceIoLimit = { device: id };
    if (limit.readBps !== undefined) entry.readBps = limit.readBps;
    if (limit.writeBps !== undefined) entry.writeBps = limit.writeBps;
    if (limit.readIops !== undefined) entry.readIops = limit.readIops;
    if (limit.writeIops !== undefined) entry.writeIops = limit.writeIops;
    resolved.push(entry);
  }
  return resolved;
}
