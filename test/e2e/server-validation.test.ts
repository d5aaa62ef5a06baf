// Bad requests: each answers its documented code and a message naming the field; nothing starts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { create, toBinary } from '@bufbuild/protobuf';
import { makeGenericClientConstructor, Metadata, type ServiceError } from '@grpc/grpc-js';

import { ClientError, type JobworkerClient, type JobView, type StartJobRequest } from '../../src/client';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { requestMessageOf, servedDescriptors } from '../../src/server/descriptors';
import { rawChannelCredentialsFromFiles } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;
let client: JobworkerClient;
let finishedJob: JobView;
let rawStub: pb.JobServiceClient;

/** ListJobs as protobuf, for values the client's plain requests cannot express. */
function rawListJobs(request: Partial<pb.ListJobsRequest>): Promise<pb.ListJobsResponse> {
  return new Promise((resolve, reject) =>
    rawStub.listJobs(pb.ListJobsRequest.fromPartial(request), (error, response) => (error ? reject(new ClientError(error.code, error.details)) : resolve(response))),
  );
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ClientError) return { code: error.codeName, details: error.details };
    throw error;
  }
  throw new Error('expected the call to fail');
}

async function drain(iterable: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of iterable) void _;
}

const big = 'x'.repeat(128 * 1024 + 1);

// A file that exists in a directory only root may enter (mkdtemp makes it 0700): the daemon must
// not tell a client that it exists.
const privateDir = mkdtempSync(path.join(tmpdir(), 'jobworker-validation-'));
const hiddenFile = path.join(privateDir, 'secret');
writeFileSync(hiddenFile, 'x');
// A link to a directory no job may see (the daemon's state directory; made once the server runs):
// binding it would bind what it points to.
const linkToHidden = path.join(privateDir, 'link');
const unreachable = /^limits\.io\[0\]\.device: \S+ does not exist or is not a path every user may look up/;

const startCases: [string, Partial<StartJobRequest>, string, RegExp][] = [
  ['a negative memory limit (refused by the client library)', { command: 'true', limits: { memoryBytes: -1 } }, 'INVALID_ARGUMENT', /^limits\.memory_bytes: must be a whole number from 0 to 9007199254740991, not -1$/],
  ['a fractional IO limit (refused by the client library)', { command: 'true', limits: { io: [{ readIops: 0.5 }] } }, 'INVALID_ARGUMENT', /^limits\.io\[0\]\.read_iops: must be a whole number from 0 to 9007199254740991, not 0\.5$/],
  ['empty command', { command: '' }, 'INVALID_ARGUMENT', /^command: must not be empty$/],
  ['NUL in the command', { command: 'a\0b' }, 'INVALID_ARGUMENT', /^command: must not contain NUL bytes$/],
  ['NUL in an argument', { command: 'echo', args: ['ok', 'b\0d'] }, 'INVALID_ARGUMENT', /^args\[1\]: must not contain NUL bytes$/],
  ['a PATH whose directories joined to the command make over 1 MiB of paths to try', { command: 'a'.repeat(4096), env: { PATH: ':'.repeat(131_000) } }, 'INVALID_ARGUMENT', /^env\.PATH: its 131001 directories, each joined to the command's 4096 bytes, make \d+ bytes of paths to try \(at most 1048576\); use a shorter PATH, or give the command as a path$/],
  ['an argument over 128 KiB', { command: 'echo', args: [big] }, 'INVALID_ARGUMENT', /^args\[0\]: is longer than 131072 bytes$/],
  ['too many arguments', { command: 'echo', args: Array(4097).fill('a') }, 'INVALID_ARGUMENT', /^args: has more than 4096 entries$/],
  ['"=" in an env name', { command: 'env', env: { 'A=B': 'x' } }, 'INVALID_ARGUMENT', /^env\.A=B: name must not contain "="$/],
  ['relative cwd', { command: 'pwd', cwd: 'tmp' }, 'INVALID_ARGUMENT', /^cwd: must be an absolute path$/],
  ['missing program', { command: '/nonexistent/tool' }, 'INVALID_ARGUMENT', /^command: not found: \/nonexistent\/tool \(ENOENT\)$/],
  ['a program in no PATH directory', { command: 'no-such-tool', env: { PATH: '/usr/bin:/bin' } }, 'INVALID_ARGUMENT', /^command: not found: "no-such-tool" is in none of the PATH directories \/usr\/bin:\/bin$/],
  ['a file that is not executable', { command: '/proc/version' }, 'INVALID_ARGUMENT', /^command: not executable: \/proc\/version: EACCES: permission denied/],
  ['cwd that does not exist', { command: 'true', cwd: '/nonexistent' }, 'INVALID_ARGUMENT', /^cwd: \/nonexistent is not a directory the job can enter \(ENOENT\); give an existing directory, or no cwd for a scratch directory of its own$/],
  ['negative-looking huge cpu', { command: 'true', limits: { cpu: -1, io: [] } }, 'INVALID_ARGUMENT', /^limits\.cpu: must be between/],
  ['more CPUs than the host has', { command: 'true', limits: { cpu: availableParallelism() + 1, io: [] } }, 'INVALID_ARGUMENT', /^limits\.cpu: must be at most \d+ \(the CPUs of this host\)/],
  ['NaN cpu', { command: 'true', limits: { cpu: Number.NaN, io: [] } }, 'INVALID_ARGUMENT', /^limits\.cpu: must be a finite number$/],
  ['memory below 1 MiB', { command: 'true', limits: { memoryBytes: 1000, io: [] } }, 'INVALID_ARGUMENT', /^limits\.memory_bytes: must be at least 1 MiB \(1048576 bytes\), got 1000 bytes$/],
  ['memory high above max', { command: 'true', limits: { memoryBytes: 64 << 20, memoryHighBytes: 128 << 20, io: [] } }, 'INVALID_ARGUMENT', /^limits\.memory_high_bytes: must not exceed the hard limit limits\.memory_bytes \(64 MiB \(67108864 bytes\)\), got 128 MiB \(134217728 bytes\)$/],
  ['cpu weight 0', { command: 'true', limits: { cpuWeight: 0, io: [] } }, 'INVALID_ARGUMENT', /^limits\.cpu_weight: must be between 1 and 10000/],
  ['pids 0', { command: 'true', limits: { pids: 0, io: [] } }, 'INVALID_ARGUMENT', /^limits\.pids: must be between/],
  ['io limit with no rate', { command: 'true', limits: { io: [{ device: '/dev/vda' }] } }, 'INVALID_ARGUMENT', /^limits\.io\[0\]: needs at least one rate: limits\.io\[0\]\.read_bytes_per_second, limits\.io\[0\]\.write_bytes_per_second, limits\.io\[0\]\.read_iops, limits\.io\[0\]\.write_iops$/],
  ['io on a virtual device', { command: 'true', limits: { io: [{ device: '/dev/null', readBytesPerSecond: 1 << 20 }] } }, 'INVALID_ARGUMENT', /limits\.io\[0\]\.device/],
  ['a maximum runtime of 0', { command: 'true', maxRuntimeMs: 0 }, 'INVALID_ARGUMENT', /^max_runtime_ms: must be an integer from 1 to 2147483647 \(24\.8 days\)$/],
  ['a maximum runtime past setTimeout\'s longest delay', { command: 'true', maxRuntimeMs: 2 ** 31 }, 'INVALID_ARGUMENT', /^max_runtime_ms: must be an integer from 1 to 2147483647/],
  ['a maximum runtime for a pool job', { command: 'true', pool: 'batch', maxRuntimeMs: 1000 }, 'INVALID_ARGUMENT', /^max_runtime_ms: is not supported for pool jobs yet$/],
  ['a name for a pool job', { command: 'true', pool: 'batch', name: 'nightly' }, 'INVALID_ARGUMENT', /^name: is not supported for pool jobs yet$/],
  ['labels for a pool job', { command: 'true', pool: 'batch', labels: { tier: 'batch' } }, 'INVALID_ARGUMENT', /^labels: are not supported for pool jobs yet$/],
  ['a name that is a job id', { command: 'true', name: '3f2a9c1e-5b7d-4c1e-9a43-2b8e1c0d7f11' }, 'INVALID_ARGUMENT', /^name: must be 1-64 letters, digits, '_', '\.' or '-', starting with a letter or digit, and not a UUID, got "3f2a9c1e-/],
  ['a label key with a space', { command: 'true', labels: { 'bad key': 'x' } }, 'INVALID_ARGUMENT', /^labels: label key "bad key" must be 1-63 letters/],
  ['33 labels', { command: 'true', labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, 'INVALID_ARGUMENT', /^labels: has 33 labels; at most 32$/],
  // Missing where anyone may look: said plainly (a missing directory is as public as its parent).
  ['io on a path that does not exist', { command: 'true', limits: { io: [{ device: '/nonexistent/disk', readBytesPerSecond: 1 << 20 }] } }, 'INVALID_ARGUMENT', /^limits\.io\[0\]\.device: \/nonexistent\/disk does not exist; this host's disks: /],
  ['io on a file in a private directory (answered as if missing)', { command: 'true', limits: { io: [{ device: hiddenFile, readBytesPerSecond: 1 << 20 }] } }, 'INVALID_ARGUMENT', unreachable],
  ['io on a device path over 4095 characters', { command: 'true', limits: { io: [{ device: `/${'a/'.repeat(3000)}`, readBytesPerSecond: 1 << 20 }] } }, 'INVALID_ARGUMENT', /^limits\.io\[0\]\.device: must be at most 4095 characters/],
  ['a bind whose source does not exist', { command: 'true', mounts: [{ source: '/nonexistent-src', target: '/mnt', readOnly: true }] }, 'INVALID_ARGUMENT', /^mounts\[0\]\.source: \/nonexistent-src: no such file or directory \(ENOENT\)$/],
  ['a directory bound onto a file', { command: 'true', mounts: [{ source: '/usr', target: '/etc/hostname', readOnly: true }] }, 'INVALID_ARGUMENT', /^mounts\[0\]\.target: \/etc\/hostname: a directory can be bound only onto a directory, and a file onto a file \(EINVAL\)$/],
  ['a bind path with a name over 255 bytes', { command: 'true', mounts: [{ source: `/${'a'.repeat(256)}`, target: '/mnt', readOnly: true }] }, 'INVALID_ARGUMENT', /^mounts\[0\]\.source: has a name longer than 255 bytes$/],
  ['a bind path over 4095 bytes', { command: 'true', mounts: [{ source: '/usr', target: `/${'b/'.repeat(2048)}`, readOnly: true }] }, 'INVALID_ARGUMENT', /^mounts\[0\]\.target: is longer than 4095 bytes$/],
  ['a bind of a link to a hidden directory', { command: 'true', mounts: [{ source: linkToHidden, target: '/mnt', readOnly: true }] }, 'INVALID_ARGUMENT', /^mounts\[0\]\.source: \S+ would show \S+, which no job may see$/],
  ['a uid without its group (0 and unset are one on the wire)', { command: 'id', user: { uid: 1000, gid: 0 } }, 'INVALID_ARGUMENT', /^user\.gid: give the primary group of uid 1000 too \(0, root's group, cannot be told from unset here; ask for it by name with user_name and group_name\)$/],
  ['io on a relative device', { command: 'true', limits: { io: [{ device: 'vda', readBytesPerSecond: 1 << 20 }] } }, 'INVALID_ARGUMENT', /^limits\.io\[0\]\.device: must be an absolute path or MAJ:MIN/],
];

describe('request validation', requireRoot, () => {
  before(async () => {
    t = await startTestServer('validation');
    symlinkSync(t.worker.stateDir, linkToHidden);
    client = await t.client('val', ['admin']);
    const files = await t.pki.client({ name: 'val-raw', roles: ['admin'] });
    rawStub = t.stub(rawChannelCredentialsFromFiles(files));
    finishedJob = await client.startJob({ command: 'echo', args: ['hello'] });
    await drain(client.streamLogs({ jobId: finishedJob.id, follow: true }));
  });
  after(async () => {
    await t?.close();
    rmSync(privateDir, { recursive: true, force: true });
  });

  for (const [name, request, code, message] of startCases) {
    it(`StartJob, ${name}: ${code}, and nothing starts`, async () => {
      const before = (await client.listAllJobs()).length;
      const error = await rejection(client.startJob({ command: '', ...request }));
      assert.equal(error.code, code);
      assert.match(error.details, message);
      assert.equal((await client.listAllJobs()).length, before);
      assert.deepEqual(await t.worker.worker.cgroupDriver.listJobs(), []);
    });
  }

  it('a refusal that would quote 75 KB of the request (a PATH) is cut to 4 KiB, and the connection goes on', async () => {
    const searchPath = Array(25_000).fill('/x').join(':');
    const error = await rejection(client.startJob({ command: 'no-such-command', env: { PATH: searchPath } }));
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.match(error.details, /^command: not found: "no-such-command" is in none of the PATH directories \/x:\/x:.*… \(25000 entries\)$/);
    assert.ok(Buffer.byteLength(error.details) <= 4096, `${Buffer.byteLength(error.details)} bytes`);
    assert.equal((await client.getJob(finishedJob.id)).id, finishedJob.id, 'the same connection answers the next call');
  });

  const otherCases: [string, () => Promise<unknown>, string, RegExp][] = [
    ['StopJob with a malformed id', () => client.stopJob('../../etc'), 'INVALID_ARGUMENT', /^job_id: must be a job id/],
    ['StopJob with an unknown signal', () => client.stopJob(finishedJob.id, { signal: 'SIGBOGUS' }), 'INVALID_ARGUMENT', /^signal: unknown signal "SIGBOGUS"/],
    ['StopJob with a grace over an hour', () => client.stopJob(finishedJob.id, { graceMs: 3_600_001 }), 'INVALID_ARGUMENT', /^grace_ms: must be at most 3600000$/],
    ['StopJob of a finished job', () => client.stopJob(finishedJob.id), 'OK', /.*/],
    ['GetJob of an unknown job', () => client.getJob('00000000-0000-4000-8000-000000000000'), 'NOT_FOUND', /not found/],
    ['ListJobs with a page of 1001', () => client.listJobs({ pageSize: 1001 }), 'INVALID_ARGUMENT', /^page_size: must be at most 1000$/],
    ['ListJobs with a forged page token', () => client.listJobs({ pageToken: 'bm9wZQ' }), 'INVALID_ARGUMENT', /^page_token: is not a token/],
    ['ListJobs with an unknown state', () => rawListJobs({ states: [42 as pb.JobState] }), 'INVALID_ARGUMENT', /^states\[0\]: 42 is not a job state$/],
    ['ListJobs with a bad label selector term', () => client.listJobs({ labels: ['tier=web', 'a b'] }), 'INVALID_ARGUMENT', /^label_selector\[1\]: label key "a b" must be/],
    ['ListJobs with a bad name', () => client.listJobs({ name: '-x' }), 'INVALID_ARGUMENT', /^name: must be 1-64 letters/],
    ['GetJob by a name no job has', () => client.getJob('no-such-name'), 'NOT_FOUND', /^no job named no-such-name$/],
    ['StreamLogs from a non-boundary offset', () => drain(client.streamLogs({ jobId: finishedJob.id, fromOffset: 17 })), 'INVALID_ARGUMENT', /^from_offset: offset 17 is not the start of a record$/],
    ['StreamLogs beyond the end', () => drain(client.streamLogs({ jobId: finishedJob.id, fromOffset: 1 << 30 })), 'INVALID_ARGUMENT', /beyond the end of the log/],
    ['StreamLogs with too many tail lines', () => drain(client.streamLogs({ jobId: finishedJob.id, tailLines: 100_001 })), 'INVALID_ARGUMENT', /^tail_lines: must be at most 100000$/],
    // Refused by the client library before the wire (the encoder would throw a bare `invalid uint64`).
    ['StreamLogs from offset -1', () => drain(client.streamLogs({ jobId: finishedJob.id, fromOffset: -1 })), 'INVALID_ARGUMENT', /^from_offset: must be a whole number from 0 to 9007199254740991, not -1$/],
    ['StreamLogs from offset 1.5', () => drain(client.streamLogs({ jobId: finishedJob.id, fromOffset: 1.5 })), 'INVALID_ARGUMENT', /^from_offset: must be a whole number from 0 to 9007199254740991, not 1\.5$/],
    ['StreamLogs with NaN tail lines', () => drain(client.streamLogs({ jobId: finishedJob.id, tailLines: Number.NaN })), 'INVALID_ARGUMENT', /^tail_lines: must be a whole number from 0 to 4294967295, not NaN$/],
    ['ListJobs with a page of -1', () => client.listJobs({ pageSize: -1 }), 'INVALID_ARGUMENT', /^page_size: must be a whole number from 0 to 4294967295, not -1$/],
    ['RemoveJob of a running job', async () => {
      const running = await client.startJob({ command: 'sleep', args: ['1000'] });
      try {
        await client.removeJob(running.id);
      } finally {
        await client.stopJob(running.id, { graceMs: 0 });
      }
    }, 'FAILED_PRECONDITION', /is running; stop it before removing it/],
  ];
  for (const [name, call, code, message] of otherCases) {
    it(`${name}: ${code}`, async () => {
      if (code === 'OK') {
        await call();
        return;
      }
      const error = await rejection(call());
      assert.equal(error.code, code);
      assert.match(error.details, message);
    });
  }

  /** StartJob with request bytes as given (what a client of another language may send). */
  async function rawStartJob() {
    const files = await t.pki.client({ name: 'raw', roles: ['admin'] });
    const credentials = rawChannelCredentialsFromFiles(files);
    const Raw = makeGenericClientConstructor(
      {
        startJob: {
          path: '/jobworker.v1.JobService/StartJob',
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      'Raw',
    );
    return new Raw(t.address, credentials) as unknown as { startJob: (b: Uint8Array, md: Metadata, cb: (e: ServiceError | null) => void) => void; close(): void };
  }

  it('a 64-bit number above 2^53−1: INVALID_ARGUMENT naming the field and the largest number accepted', async () => {
    const raw = await rawStartJob();
    const schema = requestMessageOf(servedDescriptors(), '/jobworker.v1.JobService/StartJob')!;
    const cases: [Record<string, unknown>, string][] = [
      [{ memoryBytes: 2n ** 64n - 1n }, 'limits.memory_bytes: 18446744073709551615 is above 9007199254740991 (2^53−1), the largest number this server accepts'],
      [{ io: [{ device: '/', readBytesPerSecond: 1n << 20n }, { device: '/', writeIops: 2n ** 53n }] }, 'limits.io[1].write_iops: 9007199254740992 is above 9007199254740991 (2^53−1), the largest number this server accepts'],
    ];
    for (const [limits, details] of cases) {
      const bytes = Buffer.from(toBinary(schema, create(schema, { command: 'true', limits })));
      const error = await new Promise<ServiceError | null>((resolve) => raw.startJob(bytes, new Metadata(), resolve));
      assert.equal(error?.code, 3, error?.details);
      assert.equal(error.details, details);
    }
    raw.close();
  });

  it('a map key "__proto__" (env, labels), which the generated decoding would drop without a word: INVALID_ARGUMENT naming the field', async () => {
    const raw = await rawStartJob();
    const schema = requestMessageOf(servedDescriptors(), '/jobworker.v1.JobService/StartJob')!;
    const cases: [Record<string, unknown>, string][] = [
      [{ env: JSON.parse('{"__proto__": "x", "A": "b"}') as Record<string, string> }, 'env: has a key named "__proto__", which this server cannot keep (it would be dropped without a word); rename it'],
      [{ labels: JSON.parse('{"__proto__": "x"}') as Record<string, string> }, 'labels: has a key named "__proto__", which this server cannot keep (it would be dropped without a word); rename it'],
    ];
    for (const [fields, details] of cases) {
      const bytes = Buffer.from(toBinary(schema, create(schema, { command: 'true', ...fields })));
      assert.ok(bytes.includes('__proto__'), 'the key is on the wire');
      const error = await new Promise<ServiceError | null>((resolve) => raw.startJob(bytes, new Metadata(), resolve));
      assert.equal(error?.code, 3, error?.details);
      assert.equal(error.details, details);
    }
    // The same bytes in a value are nothing special.
    const fine = Buffer.from(toBinary(schema, create(schema, { command: 'true', env: { A: '__proto__' } })));
    const ok = await new Promise<ServiceError | null>((resolve) => raw.startJob(fine, new Metadata(), resolve));
    assert.equal(ok, null);
    raw.close();
  });

  it('a string that is not UTF-8, which the generated decoding would turn into U+FFFD without a word: INVALID_ARGUMENT naming the field', async () => {
    const raw = await rawStartJob();
    const schema = requestMessageOf(servedDescriptors(), '/jobworker.v1.JobService/StartJob')!;
    // "@@@" on the wire becomes ff fe 41: not UTF-8.
    const notUtf8 = (bytes: Uint8Array): Buffer => {
      const buffer = Buffer.from(bytes);
      const at = buffer.indexOf('@@@');
      assert.ok(at >= 0);
      buffer.set([0xff, 0xfe, 0x41], at);
      return buffer;
    };
    const cases: [Record<string, unknown>, string][] = [
      [{ args: ['fine', '@@@'] }, 'args[1]'],
      [{ env: { A: 'b', B: '@@@' } }, 'env.B'],
      [{ labels: { '@@@': 'x' } }, 'labels (a key)'],
    ];
    for (const [fields, field] of cases) {
      const bytes = notUtf8(toBinary(schema, create(schema, { command: 'true', ...fields })));
      const error = await new Promise<ServiceError | null>((resolve) => raw.startJob(bytes, new Metadata(), resolve));
      assert.equal(error?.code, 3, error?.details);
      assert.equal(error.details, `${field}: is not valid UTF-8 (protobuf strings must be; the bytes cannot be kept as sent)`);
    }
    // A U+FFFD the client sent (valid UTF-8) is kept.
    const fine = Buffer.from(toBinary(schema, create(schema, { command: 'true', args: ['\uFFFD'] })));
    const ok = await new Promise<ServiceError | null>((resolve) => raw.startJob(fine, new Metadata(), resolve));
    assert.equal(ok, null);
    raw.close();
  });

  it('a malformed protobuf message: INVALID_ARGUMENT, not INTERNAL', async () => {
    const raw = await rawStartJob();
    const garbage = [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x0a, 0x05, 0x61])];
    for (const bytes of garbage) {
      const error = await new Promise<ServiceError | null>((resolve) => raw.startJob(bytes, new Metadata(), resolve));
      assert.equal(error?.code, 3, `${bytes.toString('hex')}: ${error?.details}`);
      assert.match(error!.details, /^request: not a valid protobuf message/);
    }
    raw.close();
  });

  it('a request over the size cap: RESOURCE_EXHAUSTED', async () => {
    const error = await rejection(client.startJob({ command: 'echo', args: Array(20).fill('y'.repeat(120_000)) }));
    assert.equal(error.code, 'RESOURCE_EXHAUSTED');
  });
});
