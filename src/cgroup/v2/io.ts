// cgroup v2 io controller: per-device bandwidth and IOPS caps (io.max), bytes and ops (io.stat).
import { childPath, type ControlWrite, type StatsPart } from '../cgroup-fs';
import type { DeviceIoLimit, ResolvedLimits } from '../limits';
import type { IoDeviceStats } from '../types';

function ioMaxLine(limit: DeviceIoLimit): string {
  const keys: string[] = [];
  if (limit.readBps !== undefined) keys.push(`rbps=${limit.readBps}`);
  if (limit.writeBps !== undefined) keys.push(`wbps=${limit.writeBps}`);
  if (limit.readIops !== undefined) keys.push(`riops=${limit.readIops}`);
  if (limit.writeIops !== undefined) keys.push(`wiops=${limit.writeIops}`);
  return `${limit.device} ${keys.join(' ')}`;
}

/** One write per device: io.max takes one "MAJ:MIN key=value…" line per write(2). */
export function ioWrites(limits: ResolvedLimits): ControlWrite[] {
  return limits.io.map((limit) => ({ file: 'io.max', value: ioMaxLine(limit) }));
}

/** Parses io.stat ("254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device). */
export function parseIoStat(text: string): IoDeviceStats[] {
  const devices: IoDeviceStats[] = [];
  for (const line of text.split('\n')) {
    const [device, ...pairs] = line.trim().split(/\s+/);
    if (device === undefined || !/^\d+:\d+$/.test(device)) continue;
    const values = new Map(pairs.map((pair) => {
      const [key, value] = pair.split('=');
      return [key, Number(value)] as const;
    }));
    devices.push({
      device,
      readBytes: values.get('rbytes') ?? 0,
      writeBytes: values.get('wbytes') ?? 0,
      readOps: values.get('rios') ?? 0,
      writeOps: values.get('wios') ?? 0,
    });
  }
  return devices;
}

export const ioStats: StatsPart<IoDeviceStats[]> = {
  files: ['io.stat'],
  parse: (files, dir) => parseIoStat(files.required(childPath(dir, 'io.stat'))),
};
