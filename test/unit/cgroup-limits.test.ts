// Limits → cgroup file values, and stats files → numbers: pure functions, every version.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseFlatKeyed } from '../../src/cgroup/cgroup-fs';
import { validateLimits, resolvedLimits, type ResolvedLimits } from '../../src/cgroup/limits';
import { DEFAULT_PIDS_MAX, type Limits } from '../../src/cgroup/types';
import { parseBlkioStats, blkioWrites } from '../../src/cgroup/v1/blkio';
import { cpuWrites as v1CpuWrites, parseCpuThrottling, weightToShares } from '../../src/cgroup/v1/cpu';
import { memoryWrites as v1MemoryWrites } from '../../src/cgroup/v1/memory';
import { v1Writes, type V1Layout } from '../../src/cgroup/v1/driver';
import { cpuWrites, parseCpuStat } from '../../src/cgroup/v2/cpu';
import { v2Writes } from '../../src/cgroup/v2/driver';
import { ioWrites, parseIoStat } from '../../src/cgroup/v2/io';
import { memoryWrites } from '../../src/cgroup/v2/memory';
import { ValidationError } from '../../src/errors';

const ALL = new Set(['cpu', 'memory', 'io', 'pids'] as const);

function rejects(limits: unknown, field: string, reason: RegExp): void {
  assert.throws(
    () => validateLimits(limits as Limits),
    (error: unknown) => error instanceof ValidationError && error.field === field && reason.test(error.message) && error.kind === 'invalid-argument',
  );
}

describe('validateLimits', () => {
  it('accepts no limits and typical ones', () => {
    validateLimits({});
    validateLimits({ cpu: 0.5, cpuWeight: 100, memoryBytes: 256 << 20, memoryHighBytes: 200 << 20, pids: 100 });
    validateLimits({ io: [{ readBps: 5_000_000 }, { device: '/dev/vda', writeIops: 100 }, { device: '8:0', writeBps: 1 << 20 }] });
  });

  it('names the field and the reason', () => {
    rejects({ cpu: 0 }, 'limits.cpu', /between 0.01 CPUs and 1024 CPUs, got 0 CPUs/);
    rejects({ cpu: Number.NaN }, 'limits.cpu', /finite number/);
    rejects({ cpu: '1' }, 'limits.cpu', /finite number/);
    rejects({ cpuWeight: 0 }, 'limits.cpuWeight', /between 1 and 10000/);
    rejects({ cpuWeight: 1.5 }, 'limits.cpuWeight', /whole number/);
    rejects({ memoryBytes: 1000 }, 'limits.memoryBytes', /^limits\.memoryBytes: must be at least 1 MiB \(1048576 bytes\), got 1000 bytes$/);
    rejects({ memoryBytes: 64 << 20, memoryHighBytes: 128 << 20 }, 'limits.memoryHighBytes', /must not exceed the hard limit limits\.memoryBytes \(64 MiB \(67108864 bytes\)\), got 128 MiB/);
    rejects({ pids: 0 }, 'limits.pids', /between 1 and 4194304/);
    rejects({ io: {} }, 'limits.io', /must be a list/);
    rejects({ io: [{}] }, 'limits.io[0]', /needs at least one rate: limits\.io\[0\]\.readBps, /);
    rejects({ io: [{ readBps: 100 }] }, 'limits.io[0].readBps', /must be at least 4 KiB\/s \(4096 bytes\/s\), got 100 bytes\/s/);
    rejects({ io: [{ readBps: 5e6 }, { device: 'vda', readBps: 5e6 }] }, 'limits.io[1].device', /absolute path or MAJ:MIN/);
    rejects({ io: [{ device: '/dev/vd\0a', readBps: 5e6 }] }, 'limits.io[0].device', /NUL/);
    rejects({ io: Array.from({ length: 17 }, () => ({ readBps: 5e6 })) }, 'limits.io', /at most 16/);
  });

  it('sets the default pids limit', () => {
    assert.equal(resolvedLimits({}, []).pids, DEFAULT_PIDS_MAX);
    assert.equal(resolvedLimits({ pids: 7 }, []).pids, 7);
  });
});

const limits: ResolvedLimits = {
  cpu: 0.2,
  cpuWeight: 50,
  memoryBytes: 64 << 20,
  memoryHighBytes: 48 << 20,
  pids: 64,
  io: [{ device: '254:0', readBps: 5_000_000, writeIops: 300 }, { device: '8:16', writeBps: 1_048_576 }],
};

describe('cgroup v2 file values', () => {
  it('cpu: quota over a 100 ms period, weight as is', () => {
    assert.deepEqual(cpuWrites(limits), [
      { file: 'cpu.max', value: '20000 100000' },
      { file: 'cpu.weight', value: '50' },
    ]);
    assert.deepEqual(cpuWrites({ cpu: 2, pids: 1, io: [] }), [{ file: 'cpu.max', value: '200000 100000' }]);
  });

  it('memory: max, no swap, high, and OOM takes the whole job (once its process has exec\'d)', () => {
    assert.deepEqual(memoryWrites(limits), [
      { file: 'memory.max', value: String(64 << 20) },
      { file: 'memory.swap.max', value: '0', optional: true },
      { file: 'memory.high', value: String(48 << 20) },
      { file: 'memory.oom.group', value: '1', optional: true, afterStart: true },
    ]);
    assert.deepEqual(memoryWrites({ pids: 1, io: [] }), [{ file: 'memory.oom.group', value: '1', optional: true, afterStart: true }]);
  });

  it('io: one io.max line per device, only the keys given', () => {
    assert.deepEqual(ioWrites(limits), [
      { file: 'io.max', value: '254:0 rbps=5000000 wiops=300' },
      { file: 'io.max', value: '8:16 wbps=1048576' },
    ]);
  });

  it('only for the controllers the host has', () => {
    const files = v2Writes(limits, new Set(['cpu', 'pids'] as const)).map((write) => write.file);
    assert.deepEqual(files, ['cpu.max', 'cpu.weight', 'pids.max']);
    assert.ok(v2Writes(limits, ALL).some((write) => write.file === 'pids.max' && write.value === '64'));
  });
});

describe('cgroup v1 file values', () => {
  it('cpu: quota against the default period (not rewritten); weight mapped to shares with default to default', () => {
    assert.deepEqual(v1CpuWrites(limits), [
      { file: 'cpu.cfs_quota_us', value: '20000' },
      { file: 'cpu.shares', value: '512' },
    ]);
    assert.equal(weightToShares(100), 1024);
    assert.equal(weightToShares(1), 10);
    assert.equal(weightToShares(10_000), 102_400);
  });

  it('memory: limit before memsw, soft limit for high', () => {
    assert.deepEqual(v1MemoryWrites(limits), [
      { file: 'memory.limit_in_bytes', value: String(64 << 20) },
      { file: 'memory.memsw.limit_in_bytes', value: String(64 << 20), optional: true },
      { file: 'memory.swappiness', value: '0', optional: true },
      { file: 'memory.soft_limit_in_bytes', value: String(48 << 20) },
    ]);
    // Known swap accounting: the memsw limit, required; known without: swappiness 0 instead.
    assert.deepEqual(v1MemoryWrites(limits, true).map((write) => [write.file, write.optional ?? false]), [
      ['memory.limit_in_bytes', false],
      ['memory.memsw.limit_in_bytes', false],
      ['memory.soft_limit_in_bytes', false],
    ]);
    assert.deepEqual(v1MemoryWrites(limits, false).map((write) => write.file), ['memory.limit_in_bytes', 'memory.swappiness', 'memory.soft_limit_in_bytes']);
  });

  it('blkio: one file per kind of rate', () => {
    assert.deepEqual(blkioWrites(limits), [
      { file: 'blkio.throttle.read_bps_device', value: '254:0 5000000' },
      { file: 'blkio.throttle.write_iops_device', value: '254:0 300' },
      { file: 'blkio.throttle.write_bps_device', value: '8:16 1048576' },
    ]);
  });

  it('writes go to the hierarchy of their controller; co-mounted cpu,cpuacct share one directory', () => {
    const layout: V1Layout = {
      mode: 'legacy',
      cpu: '/cg/cpu,cpuacct/jw/jobs',
      cpuacct: '/cg/cpu,cpuacct/jw/jobs',
      memory: '/cg/memory/jw/jobs',
      pids: '/cg/pids/jw/jobs',
      freezer: '/cg/freezer/jw/jobs',
    };
    const writes = v1Writes(layout, { cpu: 1, memoryBytes: 1 << 30, pids: 10, io: [] });
    assert.deepEqual([...writes.keys()], ['/cg/cpu,cpuacct/jw/jobs', '/cg/memory/jw/jobs', '/cg/pids/jw/jobs', '/cg/freezer/jw/jobs']);
    assert.deepEqual(writes.get('/cg/cpu,cpuacct/jw/jobs')!.map((write) => write.file), ['cpu.cfs_quota_us']);
    assert.deepEqual(writes.get('/cg/pids/jw/jobs'), [{ file: 'pids.max', value: '10' }]);
    assert.deepEqual(writes.get('/cg/freezer/jw/jobs'), []);
  });
});

describe('stats files', () => {
  it('v2 cpu.stat, with and without the cpu controller', () => {
    const full = 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 40\nnr_throttled 12\nthrottled_usec 900000\nnr_bursts 0\n';
    assert.deepEqual(parseCpuStat(full), {
      cpuUsageMicros: 1500, cpuUserMicros: 1000, cpuSystemMicros: 500, cpuThrottledPeriods: 12, cpuThrottledMicros: 900000,
    });
    assert.equal(parseCpuStat('usage_usec 7\nuser_usec 7\nsystem_usec 0\n').cpuThrottledPeriods, 0);
  });

  it('v1 cpu.stat throttled_time is in nanoseconds', () => {
    assert.deepEqual(parseCpuThrottling('nr_periods 5\nnr_throttled 3\nthrottled_time 2500000\n'), { cpuThrottledPeriods: 3, cpuThrottledMicros: 2500 });
  });

  it('io.stat per device', () => {
    assert.deepEqual(parseIoStat('254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=0 wbytes=0 rios=0 wios=0\n'), [
      { device: '254:0', readBytes: 4096, writeBytes: 8192, readOps: 1, writeOps: 2 },
      { device: '8:0', readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 },
    ]);
  });

  it('blkio.throttle.io_service_bytes and io_serviced', () => {
    const bytes = '254:0 Read 217088\n254:0 Write 10485760\n254:0 Sync 10702848\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 10702848\nTotal 10702848\n';
    const ops = '254:0 Read 33\n254:0 Write 160\n254:0 Sync 193\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 193\nTotal 193\n';
    assert.deepEqual(parseBlkioStats(bytes, ops), [{ device: '254:0', readBytes: 217088, writeBytes: 10485760, readOps: 33, writeOps: 160 }]);
    assert.deepEqual(parseBlkioStats('Total 0\n', 'Total 0\n'), []);
  });

  it('flat keyed files, "max" as infinity', () => {
    const values = parseFlatKeyed('oom_kill_disable 0\nunder_oom 0\noom_kill 3\nlimit max\n');
    assert.equal(values.get('oom_kill'), 3);
    assert.equal(values.get('limit'), Number.POSITIVE_INFINITY);
  });
});
