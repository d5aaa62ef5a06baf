// cgroup v1 blkio controller: throttling per device, one file per kind of rate. v1 only sees IO
// that the job submits itself (direct IO, reads), not buffered writes flushed later by the kernel.
import { childPath, type ControlWrite, type StatsPart } from '../cgroup-fs';
import type { ResolvedLimits } from '../limits';
import type { IoDeviceStats } from '../types';

export function blkioWrites(limits: ResolvedLimits): ControlWrite[] {
  const writes: ControlWrite[] = [];
  for (const limit of limits.io) {
    const line = (value: number): string => `${limit.device} ${value}`;
    if (limit.readBps !== undefined) writes.push({ file: 'blkio.throttle.read_bps_device', value: line(limit.readBps) });
    if (limit.writeBps !== undefined) writes.push({ file: 'blkio.throttle.write_bps_device', value: line(limit.writeBps) });
    if (limit.readIops !== undefined) writes.push({ file: 'blkio.throttle.read_iops_device', value: line(limit.readIops) });
    if (limit.writeIops !== undefined) writes.push({ file: 'blkio.throttle.write_iops_device', value: line(limit.writeIops) });
  }
  return writes;
}

/** Parses "254:0 Read 4096" lines (io_service_bytes / io_serviced) into device → {Read, Write}. */
function parseThrottleStat(text: string): Map<string, { read: number; write: number }> {
  const devices = new Map<string, { read: number; write: number }>();
  for (const line of text.split('\n')) {
    const [device, operation, value] = line.trim().split(/\s+/);
    if (device === undefined || !/^\d+:\d+$/.test(device) || value === undefined) continue;
    const entry = devices.get(device) ?? { read: 0, write: 0 };
    if (operation === 'Read') entry.read = Number(value);
    else if (operation === 'Write') entry.write = Number(value);
    devices.set(device, entry);
  }
  return devices;
}

export function parseBlkioStats(serviceBytes: string, serviced: string): IoDeviceStats[] {
  const bytes = parseThrottleStat(serviceBytes);
  const ops = parseThrottleStat(serviced);
  const devices = new Set([...bytes.keys(), ...ops.keys()]);
  return [...devices].map((device) => ({
    device,
    readBytes: bytes.get(device)?.read ?? 0,
    writeBytes: bytes.get(device)?.write ?? 0,
    readOps: ops.get(device)?.read ?? 0,
    writeOps: ops.get(device)?.write ?? 0,
  }));
}

export const blkioStats: StatsPart<IoDeviceStats[]> = {
  files: ['blkio.throttle.io_service_bytes', 'blkio.throttle.io_serviced'],
  parse: (files, dir) =>
    parseBlkioStats(files.required(childPath(dir, 'blkio.throttle.io_service_bytes')), files.required(childPath(dir, 'blkio.throttle.io_serviced'))),
};
