// Bad input with fast-check. Requests: every RPC gets raw bytes — malformed protobuf, wrong wire
// types, huge and overflowing varints, huge fields, NUL bytes, unicode, negative and out-of-range
// limits — plus well-formed requests built from the validation table
// (test/e2e/server-validation.test.ts) as seeds; each call must answer within its deadline with a
// documented code (never INTERNAL or UNKNOWN) and the daemon must live on. Logs: the reader
// properties of test/helpers/reliability-log-fuzz.ts, and corrupted log files served over gRPC
// (DATA_LOSS or INVALID_ARGUMENT, never INTERNAL).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { makeGenericClientConstructor, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';

import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { rawChannelCredentials, rawChannelCredentialsFromFiles } from '../helpers/pki';
import { fuzzLogReader } from '../helpers/reliability-log-fuzz';
import { ReliabilityDaemon, withTimeout } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';

const METHODS = ['StartJob', 'StopJob', 'GetJob', 'ListJobs', 'StreamLogs', 'WatchJobs', 'RemoveJob'] as const;
type Method = (typeof METHODS)[number];
const STREAMING = new Set<Method>(['StreamLogs', 'WatchJobs']);

/** Codes docs/api.md allows for a bad request from an admin (never INTERNAL, UNKNOWN, UNAVAILABLE). */
const ALLOWED = new Set<number>([GrpcStatus.OK, GrpcStatus.INVALID_ARGUMENT, GrpcStatus.NOT_FOUND, GrpcStatus.FAILED_PRECONDITION, GrpcStatus.RESOURCE_EXHAUSTED, GrpcStatus.DATA_LOSS]);

// --- a tiny protobuf writer, so any field can carry any wire type and value -------------------------
function varint(value: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

type Field = { no: number; wire: 0; value: bigint } | { no: number; wire: 1 | 5; bytes: Uint8Array } | { no: number; wire: 2; bytes: Uint8Array };

function encodeFields(fields: Field[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    parts.push(Buffer.from(varint(BigInt((f.no << 3) | f.wire))));
    if (f.wire === 0) parts.push(Buffer.from(varint(f.value)));
    else if (f.wire === 2) parts.push(Buffer.from(varint(BigInt(f.bytes.length))), Buffer.from(f.bytes));
    else {
      const fixed = Buffer.alloc(f.wire === 1 ? 8 : 4);
      Buffer.from(f.bytes).copy(fixed, 0, 0, fixed.length);
      parts.push(fixed);
    }
  }
  return Buffer.concat(parts);
}

const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 32 }),
  fc.constantFrom('', '\0', 'a\0b', 'true', '/bin/true', '..', '../../etc/passwd', '00000000-0000-4000-8000-000000000000', 'SIGKILL', 'SIGBOGUS', '\u202e\u0000\uffff', '\ud800'),
  fc.integer({ min: 128 * 1024 - 2, max: 128 * 1024 + 2 }).map((n) => 'x'.repeat(n)),
);
const textBytes = nasty.map((s) => new TextEncoder().encode(s));
const bigVarint = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }), fc.constantFrom(0n, -1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, 4194305n, 3_600_001n));
const fieldArb: fc.Arbitrary<Field> = fc.oneof(
  fc.record({ no: fc.integer({ min: 1, max: 12 }), wire: fc.constant(0 as const), value: bigVarint }),
  fc.record({ no: fc.integer({ min: 1, max: 12 }), wire: fc.constant(2 as const), bytes: fc.oneof(textBytes, fc.uint8Array({ maxLength: 256 })) }),
  fc.record({ no: fc.integer({ min: 1, max: 12 }), wire: fc.constantFrom(1 as const, 5 as const), bytes: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
);
/** A Limits message (field 5 of StartJobRequest) with arbitrary values, including negative and NaN-ish doubles. */
const limitsArb = fc
  .record({
    cpu: fc.double(),
    memoryBytes: bigVarint,
    pids: bigVarint,
    cpuWeight: bigVarint,
  })
  .map(({ cpu, memoryBytes, pids, cpuWeight }) => {
    const d = Buffer.alloc(8);
    d.writeDoubleLE(cpu);
    return encodeFields([
      { no: 1, wire: 1, bytes: d },
      { no: 2, wire: 0, value: memoryBytes },
      { no: 4, wire: 0, value: pids },
      { no: 3, wire: 0, value: cpuWeight },
    ]);
  });

const requestArb: fc.Arbitrary<{ method: Method; bytes: Buffer }> = fc.record({
  method: fc.constantFrom(...METHODS),
  bytes: fc.oneof(
    fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
    fc.array(fieldArb, { maxLength: 8 }).map(encodeFields),
    fc.tuple(fc.array(fieldArb, { maxLength: 4 }), limitsArb).map(([fields, limits]) => Buffer.concat([encodeFields([{ no: 1, wire: 2, bytes: new TextEncoder().encode('true') }, ...fields]), encodeFields([{ no: 5, wire: 2, bytes: limits }])])),
  ),
});

/** Well-formed requests from the validation table (test/e2e/server-validation.test.ts), as seeds. */
function seeds(finishedJobId: string): { method: Method; bytes: Buffer }[] {
  const big = 'x'.repeat(128 * 1024 + 1);
  const start = (r: Partial<pb.StartJobRequest>) => ({ method: 'StartJob' as const, bytes: Buffer.from(pb.StartJobRequest.encode(pb.StartJobRequest.fromPartial({ command: '', ...r })).finish()) });
  return [
    start({ command: '' }),
    start({ command: 'a\0b' }),
    start({ command: 'echo', args: ['ok', 'b\0d'] }),
    start({ command: 'echo', args: [big] }),
    start({ command: 'echo', args: Array(4097).fill('a') }),
    start({ command: 'env', env: { 'A=B': 'x' } }),
    start({ command: 'pwd', cwd: 'tmp' }),
    start({ command: '/nonexistent/tool' }),
    start({ command: 'true', cwd: '/nonexistent' }),
    start({ command: 'true', limits: { cpu: -1, io: [] } }),
    start({ command: 'true', limits: { cpu: Number.NaN, io: [] } }),
    start({ command: 'true', limits: { memoryBytes: 1000, io: [] } }),
    start({ command: 'true', limits: { memoryBytes: 64 << 20, memoryHighBytes: 128 << 20, io: [] } }),
    start({ command: 'true', limits: { cpuWeight: 0, io: [] } }),
    start({ command: 'true', limits: { pids: 0, io: [] } }),
    start({ command: 'true', limits: { io: [{ device: '/dev/vda' }] } }),
    start({ command: 'true', limits: { io: [{ device: '/dev/null', readBytesPerSecond: 1 << 20 }] } }),
    start({ command: 'true', limits: { io: [{ device: 'vda', readBytesPerSecond: 1 << 20 }] } }),
    { method: 'StopJob', bytes: Buffer.from(pb.StopJobRequest.encode({ jobId: '../../etc', signal: '', graceMs: undefined }).finish()) },
    { method: 'StopJob', bytes: Buffer.from(pb.StopJobRequest.encode({ jobId: finishedJobId, signal: 'SIGBOGUS', graceMs: undefined }).finish()) },
    { method: 'StopJob', bytes: Buffer.from(pb.StopJobRequest.encode({ jobId: finishedJobId, signal: '', graceMs: 3_600_001 }).finish()) },
    { method: 'GetJob', bytes: Buffer.from(pb.GetJobRequest.encode({ jobId: '00000000-0000-4000-8000-000000000000' }).finish()) },
    { method: 'ListJobs', bytes: Buffer.from(pb.ListJobsRequest.encode(pb.ListJobsRequest.fromPartial({ pageSize: 1001 })).finish()) },
    { method: 'ListJobs', bytes: Buffer.from(pb.ListJobsRequest.encode(pb.ListJobsRequest.fromPartial({ pageToken: 'bm9wZQ' })).finish()) },
    { method: 'ListJobs', bytes: Buffer.from(pb.ListJobsRequest.encode(pb.ListJobsRequest.fromPartial({ states: [42 as pb.JobState] })).finish()) },
    { method: 'StreamLogs', bytes: Buffer.from(pb.StreamLogsRequest.encode(pb.StreamLogsRequest.fromPartial({ jobId: finishedJobId, fromOffset: 17 })).finish()) },
    { method: 'StreamLogs', bytes: Buffer.from(pb.StreamLogsRequest.encode(pb.StreamLogsRequest.fromPartial({ jobId: finishedJobId, fromOffset: 1 << 30 })).finish()) },
    { method: 'StreamLogs', bytes: Buffer.from(pb.StreamLogsRequest.encode(pb.StreamLogsRequest.fromPartial({ jobId: finishedJobId, tailLines: 100_001 })).finish()) },
    { method: 'StartJob', bytes: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]) },
    { method: 'StartJob', bytes: Buffer.from([0xff, 0xff, 0xff]) },
    { method: 'StartJob', bytes: Buffer.from([0x0a, 0x05, 0x61]) },
  ];
}

type RawStub = Record<string, (...args: unknown[]) => unknown> & { close(): void };

function rawStub(address: string, credentials: ReturnType<typeof rawChannelCredentials>): RawStub {
  const identity = (b: Buffer) => b;
  const definition = Object.fromEntries(
    METHODS.map((m) => [m, { path: `/jobworker.v1.JobService/${m}`, requestStream: false, responseStream: STREAMING.has(m), requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity }]),
  );
  const Raw = makeGenericClientConstructor(definition, 'RawJobService');
  return new Raw(address, credentials) as unknown as RawStub;
}

/** Sends raw bytes to a method; resolves with the status code (a streaming call is read to its end). */
function call(stub: RawStub, method: Method, bytes: Buffer, deadlineMs: number): Promise<{ code: number; details: string }> {
  const deadline = Date.now() + deadlineMs;
  if (!STREAMING.has(method)) {
    return new Promise((resolve) => {
      stub[method]!(bytes, new Metadata(), { deadline }, (error: ServiceError | null) => resolve({ code: error?.code ?? 0, details: error?.details ?? '' }));
    });
  }
  return new Promise((resolve) => {
    const stream = stub[method]!(bytes, new Metadata(), { deadline }) as NodeJS.ReadableStream & { on(event: string, fn: (arg: never) => void): void };
    stream.on('data', () => undefined);
    stream.on('error', (error: ServiceError) => resolve({ code: error.code, details: error.details }));
    stream.on('end', () => resolve({ code: 0, details: '' }));
  });
}

/** The log file of a job in the daemon's state directory (whatever its layout). */
function logFileOf(stateDir: string, jobId: string): string {
  const walk = (dir: string): string | undefined => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = walk(p);
        if (found !== undefined) return found;
      } else if (p.includes(jobId) && p.endsWith('.log')) return p;
    }
    return undefined;
  };
  const found = walk(stateDir);
  if (found === undefined) throw new Error(`no log file for ${jobId} under ${stateDir}`);
  return found;
}

export const fuzzRequests: Scenario = {
  name: 'fuzz',
  group: 'bad input',
  title: 'fuzzed requests (malformed protobuf, huge fields, NUL, unicode, bad limits) and damaged logs',
  timeoutMs: (soak) => (soak ? 3600_000 : 6 * 60_000),
  async run(ctx: ScenarioContext) {
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'fuzz' });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const admin = await daemon.client('fuzzer', ['admin']);
    const finished = await admin.startJob({ command: 'sh', args: ['-c', 'seq 1 50000; echo err >&2'] });
    for await (const _ of admin.streamLogs({ jobId: finished.id, follow: true })) void _;
    const files = await daemon.clientFiles('fuzzer', ['admin']);
    const credentials = rawChannelCredentialsFromFiles(files);
    const stub = rawStub(`localhost:${daemon.port}`, credentials);
    ctx.defer(() => stub.close());

    const codes = new Map<string, number>();
    let calls = 0;
    const numRuns = ctx.soak ? 30_000 : 2_000;
    const check = async ({ method, bytes }: { method: Method; bytes: Buffer }) => {
      ctx.signal.throwIfAborted();
      const { code, details } = await withTimeout(call(stub, method, bytes, method === 'WatchJobs' ? 250 : 20_000), 30_000, `${method} call`);
      calls++;
      const name = `${method} ${GrpcStatus[code]}`;
      codes.set(name, (codes.get(name) ?? 0) + 1);
      // WatchJobs with a valid filter watches until the deadline: that is its job, not a hang.
      const allowed = ALLOWED.has(code) || (method === 'WatchJobs' && code === GrpcStatus.DEADLINE_EXCEEDED);
      assert.ok(allowed, `${method} ${bytes.subarray(0, 64).toString('hex')}… answered ${GrpcStatus[code]}: ${details}`);
      if (code === GrpcStatus.INVALID_ARGUMENT) assert.ok(/^[a-z_]+(\[\d+\]|\.[^:]+)*: |^request: |^spawn failed|exec of|chdir to/.test(details) || details.includes(':'), `${method}: unhelpful message ${details}`);
      assert.equal(daemon.alive, true, 'the daemon died');
    };
    for (const seed of seeds(finished.id)) await check(seed);
    await fc.assert(fc.asyncProperty(requestArb, check), { numRuns, seed: ctx.seed, interruptAfterTimeLimit: ctx.soak ? 3000_000 : 240_000 });

    // Anything the fuzzer managed to start is stopped; nothing else changed.
    for (const job of await admin.listAllJobs({ states: ['running'] })) await admin.stopJob(job.id, { graceMs: 0 });
    const started = (await admin.listAllJobs()).length - 1;
    ctx.figure('requests', calls);
    ctx.figure('jobs the fuzzer started', started);
    ctx.figure('codes', [...new Set([...codes.keys()].map((k) => k.split(' ')[1]))].sort().join('/'));
    ctx.figure('INTERNAL or UNKNOWN', 0);

    // Damaged log files on disk, served over gRPC: DATA_LOSS or INVALID_ARGUMENT, never INTERNAL.
    const logPath = logFileOf(daemon.stateDir, finished.id);
    const original = readFileSync(logPath);
    const served = new Map<string, number>();
    const damages: [string, (b: Buffer) => Buffer][] = [
      ['zeroed header', (b) => Buffer.concat([Buffer.alloc(16), b.subarray(16)])],
      ['bad record magic at 16', (b) => { const c = Buffer.from(b); c[16] = c[16]! ^ 0xff; return c; }],
      ['bad header CRC mid-file', (b) => { const c = Buffer.from(b); const at = 16 + 24 + b.readUInt32LE(16 + 8); c[at + 21] = c[at + 21]! ^ 0x55; return c; }],
      ['truncated mid-record', (b) => b.subarray(0, Math.floor(b.length / 2))],
      ['garbage appended', (b) => Buffer.concat([b, Buffer.from('garbage, not a record')])],
      ['emptied', () => Buffer.alloc(0)],
    ];
    for (const [what, change] of damages) {
      writeFileSync(logPath, change(original));
      for (const request of [{ jobId: finished.id }, { jobId: finished.id, tailLines: 5 }, { jobId: finished.id, fromOffset: 16 }]) {
        const bytes = Buffer.from(pb.StreamLogsRequest.encode(pb.StreamLogsRequest.fromPartial(request)).finish());
        const { code, details } = await withTimeout(call(stub, 'StreamLogs', bytes, 20_000), 30_000, 'StreamLogs of a damaged log');
        assert.ok(code === GrpcStatus.OK || code === GrpcStatus.DATA_LOSS || code === GrpcStatus.INVALID_ARGUMENT, `${what}: ${GrpcStatus[code]} ${details}`);
        served.set(GrpcStatus[code]!, (served.get(GrpcStatus[code]!) ?? 0) + 1);
      }
    }
    writeFileSync(logPath, original);
    assert.equal(statSync(logPath).size, original.length);
    ctx.figure('damaged logs served', [...served].map(([k, v]) => `${k}:${v}`).join('/'));

    // The reader itself, in-process, on many damaged files.
    const logFuzz = await fuzzLogReader({ numRuns: ctx.soak ? 50_000 : 3_000, seed: ctx.seed, timeLimitMs: ctx.soak ? 1800_000 : 120_000 });
    ctx.figure('log files fuzzed', logFuzz.runs);
    ctx.figure('damaged', logFuzz.damagedLogs);
    ctx.figure('intact records checked', logFuzz.recordsChecked);
    assert.equal(daemon.alive, true);
  },
};
