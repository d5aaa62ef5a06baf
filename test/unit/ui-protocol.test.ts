// The UI's own pieces that need no daemon: log frames (header and data, offsets up to 2^53 − 1
// exact), listen addresses, the backoff, and a job's samples (rates, the final reading once,
// thinning when full).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { JobView } from '../../src/client';
import { retryDelayMs } from '../../src/cli/ui/host-connection';
import { JobSamples, MAX_SAMPLES } from '../../src/cli/ui/job-samples';
import { acceptedHosts, isLoopback, parseListenAddress, urlHost } from '../../src/cli/ui/listen-address';
import { decodeFrame, encodeFrameHeader, FRAME_HEADER_BYTES } from '../../src/cli/ui/protocol';

describe('UI log frames', () => {
  it('carry kind, stream, subscription, offsets and time exactly, then the bytes', () => {
    const header = encodeFrameHeader({ kind: 'chunk', stream: 'stderr', sub: 4_000_000_000, offset: 2 ** 53 - 17, nextOffset: 2 ** 53 - 1, timeUnixMicros: 1_714_557_600_123_456 });
    assert.equal(header.length, FRAME_HEADER_BYTES);
    const data = Buffer.from('hello\x1b[31m\n');
    const frame = decodeFrame(Buffer.concat([header, data]));
    assert.deepEqual({ ...frame, data: Buffer.from(frame.data).toString() }, { kind: 'chunk', stream: 'stderr', sub: 4_000_000_000, offset: 2 ** 53 - 17, nextOffset: 2 ** 53 - 1, timeUnixMicros: 1_714_557_600_123_456, data: data.toString() });
    const end = decodeFrame(encodeFrameHeader({ kind: 'end', stream: 'stdout', sub: 1, offset: 0, nextOffset: 0, timeUnixMicros: 0 }));
    assert.equal(end.kind, 'end');
    assert.equal(end.data.length, 0);
  });

  it('refuse what is not a frame', () => {
    assert.throws(() => decodeFrame(new Uint8Array(10)), /shorter than its 32-byte header/);
    const header = encodeFrameHeader({ kind: 'chunk', stream: 'stdout', sub: 1, offset: 0, nextOffset: 1, timeUnixMicros: 0 });
    header[0] = 9;
    assert.throws(() => decodeFrame(header), /kind 9/);
  });
});

describe('UI listen addresses', () => {
  it('parse HOST:PORT, a port alone, localhost and IPv6; names are refused', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListenAddress('0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddress('localhost:1'), { host: '127.0.0.1', port: 1 });
    assert.deepEqual(parseListenAddress('[::1]:9000'), { host: '::1', port: 9000 });
    assert.match(String(parseListenAddress('example.com:80')), /not an IP address/);
    assert.match(String(parseListenAddress('1.2.3.4:70000')), /port must be from 0 to 65535/);
    assert.match(String(parseListenAddress('1.2.3.4:')), /expected HOST:PORT/);
  });

  it('know loopback, and the Host values that name the server', () => {
    assert.ok(isLoopback('127.0.0.1') && isLoopback('127.5.0.1') && isLoopback('::1'));
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('10.0.0.1') && !isLoopback('::'));
    // Not localhost: it may resolve to the other loopback family, where another server may listen.
    assert.deepEqual([...acceptedHosts({ host: '::1', port: 8080 })].sort(), ['[::1]:8080']);
    assert.deepEqual([...acceptedHosts({ host: '127.0.0.1', port: 8080 })].sort(), ['127.0.0.1:8080']);
    assert.ok(acceptedHosts({ host: '127.0.0.1', port: 80 }).has('127.0.0.1'), 'the default port may be left out');
    assert.ok(acceptedHosts({ host: '0.0.0.0', port: 8080 }).has('localhost:8080'), 'a wildcard answers on both families');
    assert.equal(urlHost({ host: '::1', port: 5 }), '[::1]:5');
    assert.equal(urlHost({ host: '0.0.0.0', port: 5 }), '127.0.0.1:5');
  });
});

describe('UI reconnection backoff', () => {
  it('doubles from 1 s to 30 s, within ±20%', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 30].map((attempt) => retryDelayMs(attempt, () => 0.5)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(retryDelayMs(0, () => 0), 800);
    assert.equal(retryDelayMs(9, () => 1), 36000);
  });
});

function job(overrides: Partial<JobView> & { cpu?: number; memory?: number; peak?: number }): JobView {
  return {
    id: '3f2a9c1e-5b7d-4c1e-9a43-2b8e1c0d7f11',
    owner: 'ada',
    name: null,
    labels: {},
    command: 'sh',
    args: [],
    argsOmitted: 0,
    cwd: '/',
    user: null,
    isolation: { namespaces: ['pid', 'mount', 'cgroup', 'ipc', 'uts'], network: 'host', readOnlyRoot: false, mounts: [] },
    state: 'running',
    pid: 10,
    outcome: { exitCode: null, signal: null, oomKilled: false, stoppedBy: null, timedOut: false, reason: null },
    createdAt: new Date(0),
    startedAt: new Date(0),
    finishedAt: null,
    limits: { cpu: null, cpuWeight: null, memoryBytes: 64 << 20, memoryHighBytes: null, pids: null, io: [] },
    maxRuntimeMs: null,
    log: { sizeBytes: 0, droppedBytes: 0, truncated: false, writeError: null },
    pool: null,
    stats: {
      cpuUsageMicros: overrides.cpu ?? 0,
      cpuUserMicros: 0,
      cpuSystemMicros: 0,
      cpuThrottledPeriods: 0,
      cpuThrottledMicros: 0,
      memoryCurrentBytes: overrides.memory ?? 0,
      memoryPeakBytes: overrides.peak ?? null,
      oomKills: 0,
      pidsCurrent: 1,
      io: [{ device: '8:0', readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 }],
    },
    ...overrides,
  };
}

describe("a job's samples", () => {
  it('compute rates between readings, as top does, and take the final stats once', () => {
    const samples = new JobSamples();
    assert.equal(samples.addLive(job({ cpu: 0, memory: 1000 }), 1000)?.cpuPercent, null, 'no rate without an earlier reading');
    const second = samples.addLive(job({ cpu: 500_000, memory: 2000, peak: 3000 }), 2000)!;
    assert.equal(second.cpuPercent, 50);
    assert.equal(second.memoryBytes, 2000);
    assert.equal(second.memoryPeakBytes, 3000);
    const finished = job({ cpu: 1_500_000, memory: 0, peak: 64 << 20, state: 'failed', finishedAt: new Date(4000) });
    const last = samples.addFinal(finished)!;
    assert.equal(last.time, 4000);
    assert.equal(last.cpuPercent, 50);
    assert.equal(last.memoryPeakBytes, 64 << 20);
    assert.equal(samples.addFinal(finished), undefined, 'once');
    assert.equal(samples.addLive(job({}), 5000), undefined, 'nothing after the end');
    assert.equal(samples.samples.length, 3);
  });

  it('keep the whole life at a coarser grain when full', () => {
    const samples = new JobSamples();
    for (let i = 0; i < MAX_SAMPLES + 10; i++) samples.addLive(job({ cpu: i * 1000 }), i * 1000);
    assert.ok(samples.samples.length <= MAX_SAMPLES);
    assert.ok(samples.samples[0]!.time <= 1000, 'the start is still there');
    assert.equal(samples.samples.at(-1)!.time, (MAX_SAMPLES + 9) * 1000, 'and the latest');
  });
});
