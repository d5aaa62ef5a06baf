// Turning what a user names as "the disk" (a device node, a partition, MAJ:MIN, or any path) into
// the MAJ:MIN of the whole disk that io.max / blkio.throttle.* understand. As systemd does, a
// partition is mapped to its parent disk through /sys/dev/block; virtual devices (loop, zram,
// device-mapper…) are refused, since throttling them limits nothing real or double-counts.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { errorCode, systemError, ValidationError } from '../errors';
import { everyoneCanReach } from '../request-paths';
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

/** A path in a message: at most 256 characters of it (a request may send up to 4096). */
function quotedPath(target: string): string {
  return target.length > 256 ? `${target.slice(0, 256)}…` : target;
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
  /**
   * A job's request (not the operator's configuration): a path must be one every user may look up,
   * or the daemon, resolving it as root, would tell a client whether a hidden file exists.
   */
  fromClient?: boolean;
}

/**
 * The whole disk behind `spec`: a block device node (/dev/vda1 → vda), "MAJ:MIN", or any other
 * absolute path (the disk its filesystem is on). Without `spec`, the disk behind `cwd`. A refusal
 * lists the host's physical disks, so that the fix is in the message whatever the host calls them
 * (sda, vda, nvme0n1…).
 */
export async function resolveBlockDevice(spec: string | undefined, cwd: string, options: DeviceResolveOptions = {}): Promise<BlockDevice> {
  try {
    return await findBlockDevice(spec, cwd, options);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const disks = await physicalDisks(options.sysRoot ?? DEFAULT_SYS_ROOT);
    const list = disks.length === 0 ? 'this host has no physical disk to limit' : `this host's disks: ${disks.map((disk) => `/dev/${disk.name} (${deviceId(disk)})`).join(', ')}`;
    throw new ValidationError(error.field, `${error.reason}; ${list}`, { related: error.related, kind: error.kind });
  }
}

/** The whole physical disks sysfs lists (/sys/block without loop, zram, dm-… devices), by name. */
export async function physicalDisks(sysRoot: string = DEFAULT_SYS_ROOT): Promise<BlockDevice[]> {
  const dir = path.join(sysRoot, 'block');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  const disks: BlockDevice[] = [];
  for (const name of names.sort()) {
    try {
      if ((await fsp.realpath(path.join(dir, name))).split(path.sep).includes('virtual')) continue;
      const match = /^(\d+):(\d+)$/.exec((await fsp.readFile(path.join(dir, name, 'dev'), 'utf8')).trim());
      if (match !== null) disks.push({ major: Number(match[1]), minor: Number(match[2]), name });
    } catch {
      // A disk that went away while we looked is not one to offer.
    }
  }
  return disks;
}

async function findBlockDevice(spec: string | undefined, cwd: string, options: DeviceResolveOptions): Promise<BlockDevice> {
  const sysRoot = options.sysRoot ?? DEFAULT_SYS_ROOT;
  const field = options.field ?? 'device';
  const numeric = spec === undefined ? null : /^(\d+):(\d+)$/.exec(spec);
  if (numeric !== null) {
    return wholeDisk(field, `${spec} is`, { major: Number(numeric[1]), minor: Number(numeric[2]) }, sysRoot);
  }
  const target = spec ?? cwd;
  const what = spec === undefined ? `the working directory ${cwd} is on` : undefined;
  if (!path.isAbsolute(target)) throw new ValidationError(field, `must be an absolute path or MAJ:MIN, got ${JSON.stringify(target)}`);
  if (spec !== undefined && options.fromClient === true && !(await everyoneCanReach(target))) {
    // One answer for "missing" and "hidden" behind a private directory: which of the two it is is
    // not the client's to learn.
    throw new ValidationError(field, `${quotedPath(target)} does not exist or is not a path every user may look up (each directory on the way searchable by all); name a device node (/dev/sda), MAJ:MIN, or a path on the disk outside private directories`);
  }
  let stat;
  try {
    stat = await fsp.stat(target, { bigint: true });
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ValidationError(field, `${quotedPath(target)} does not exist`);
    if (code !== undefined) throw new ValidationError(field, `${quotedPath(target)} cannot be looked up (${code})`);
    throw systemError('stat', target, error);
  }
  if (stat.isBlockDevice()) return wholeDisk(field, what ?? `${target} is`, splitDev(stat.rdev), sysRoot);
  if (stat.isCharacterDevice()) throw new ValidationError(field, `${target} is a character device, not a block device`);
  return wholeDisk(field, what ?? `${target} is on`, splitDev(stat.dev), sysRoot);
}

/**
 * Resolves each limit's device (default: the disk behind `cwd`). Two spellings of one disk
 * (/dev/vda and 254:0, or a partition and its disk) make one entry when they set different rates;
 * the same rate twice for one disk is refused, naming both spellings.
 */
export async function resolveIoLimits(io: readonly IoLimit[] | undefined, cwd: string, options: Omit<DeviceResolveOptions, 'field'> = {}): Promise<DeviceIoLimit[]> {
  const resolved = new Map<string, { entry: DeviceIoLimit; spelled: string[] }>();
  for (const [index, limit] of (io ?? []).entries()) {
    const field = `limits.io[${index}]`;
    const disk = await resolveBlockDevice(limit.device, cwd, { ...options, field: `${field}.device` });
    const id = deviceId(disk);
    const spelling = limit.device ?? `the working directory ${cwd}`;
    let known = resolved.get(id);
    if (known === undefined) {
      known = { entry: { device: id }, spelled: [] };
      resolved.set(id, known);
    }
    for (const rate of ['readBps', 'writeBps', 'readIops', 'writeIops'] as const) {
      const value = limit[rate];
      if (value === undefined) continue;
      if (known.entry[rate] !== undefined) {
        const from = [...new Set(known.spelled)].join(', ');
        throw new ValidationError(`${field}.${rate}`, `${spelling} is disk ${disk.name} (${id}), which has this rate already (from ${from}); give each rate once per disk`);
      }
      known.entry[rate] = value;
    }
    known.spelled.push(spelling);
  }
  return [...resolved.values()].map(({ entry }) => entry);
}
