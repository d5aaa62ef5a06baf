// job-cli's output: the job report --json prints (from the API's Job, through the client's view),
// the text rendered from it, exit statuses, log lines with timestamps, markers, and top's rates.
// Pure functions, no daemon.
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';

import { commandLine, exitCell, renderJobDetails, renderJobTable, renderTable, shellQuote, truncate } from '../../src/cli/job-cli/format';
import { exitStatusOf, toJobReport } from '../../src/cli/job-cli/job-report';
import { chunkJson, describeMarker, formatMicros, LogPrinter, prefixLines } from '../../src/cli/job-cli/log-output';
import { renderTop, topRows, type Reading } from '../../src/cli/job-cli/top';
import { jobFromPb } from '../../src/client/convert';
import * as pb from '../../src/gen/jobworker/v1/jobworker';

const NOW = new Date('2024-05-01T12:00:10Z');

/** What job-cli prints of an API Job: through the client's view, as the commands do. */
function report(job: pb.Job, now: Date) {
  return toJobReport(jobFromPb(job), now);
}

function pbJob(over: Partial<pb.Job> = {}): pb.Job {
  return pb.Job.fromPartial({
    id: '3f2a9c1e-0000-4000-8000-000000000001',
    owner: 'alice',
    command: 'sh',
    args: ['-c', "echo 'hi there'"],
    cwd: '/',
    state: pb.JobState.JOB_STATE_RUNNING,
    pid: 4242,
    createdAt: new Date('2024-05-01T12:00:00Z'),
    startedAt: new Date('2024-05-01T12:00:00Z'),
    limits: { cpu: 0.5, memoryBytes: 128 * 2 ** 20, io: [{ device: '/dev/sda', readBytesPerSecond: 10 * 2 ** 20 }] },
    log: { sizeBytes: 100 },
    stats: { cpuUsageMicros: 2_000_000, cpuUserMicros: 1_500_000, cpuSystemMicros: 500_000, memoryCurrentBytes: 64 * 2 ** 20, memoryPeakBytes: 80 * 2 ** 20, pidsCurrent: 3, io: [{ device: '8:0', readBytes: 10_000_000, writeBytes: 0 }] },
    ...over,
  });
}

describe('the job report', () => {
  it('has every field, null where it does not apply', () => {
    const view = report(pbJob(), NOW);
    assert.equal(view.state, 'running');
    assert.equal(view.exitCode, null);
    assert.equal(view.signal, null);
    assert.equal(view.stoppedBy, null);
    assert.equal(view.finishedAt, null);
    assert.equal(view.durationMs, 10_000);
    assert.deepEqual(view.limits, {
      cpu: 0.5, cpuWeight: null, memoryBytes: 128 * 2 ** 20, memoryHighBytes: null, pids: null,
      io: [{ device: '/dev/sda', readBytesPerSecond: 10 * 2 ** 20, writeBytesPerSecond: null, readIops: null, writeIops: null }],
    });
    assert.deepEqual(JSON.parse(JSON.stringify(view)), view, 'JSON-safe');
    const fresh = report(pb.Job.fromPartial({ id: 'x', state: pb.JobState.JOB_STATE_STARTING }), NOW);
    assert.deepEqual([fresh.pid, fresh.startedAt, fresh.durationMs, fresh.stats, fresh.reason], [null, null, null, null, null]);
  });

  it('exit status: the code, 128 + the signal, 1 for a lost job', () => {
    assert.equal(exitStatusOf({ exitCode: 0, signal: null }), 0);
    assert.equal(exitStatusOf({ exitCode: 7, signal: null }), 7);
    assert.equal(exitStatusOf({ exitCode: null, signal: 'SIGKILL' }), 137);
    assert.equal(exitStatusOf({ exitCode: null, signal: 'SIGTERM' }), 143);
    assert.equal(exitStatusOf({ exitCode: null, signal: 'SIGINT' }), 130);
    assert.equal(exitStatusOf({ exitCode: null, signal: null }), 1);
  });
});

describe('text for people', () => {
  it('tables pad columns, never the last', () => {
    assert.equal(renderTable(['A', 'LONG HEADER', 'C'], [['xx', 'y', 'last cell'], ['', 'z', '']]), 'A   LONG HEADER  C\nxx  y            last cell\n    z\n');
  });

  it('quotes command lines the way a shell reads them back', () => {
    assert.equal(shellQuote(['sh', '-c', "echo 'hi'; ls"]), `sh -c 'echo '\\''hi'\\''; ls'`);
    assert.equal(shellQuote(['ls', '-la', '/tmp/a=b,c']), 'ls -la /tmp/a=b,c');
    assert.equal(shellQuote(['printf', '']), "printf ''");
    assert.equal(truncate('a\nb  c', 10), 'a b c');
    assert.equal(truncate('abcdefghijkl', 6), 'abcde…');
  });

  it('a listed job whose arguments were left out says how many', () => {
    const listed = report(pbJob({ args: ['-c'], argsOmitted: 3 }), NOW);
    assert.equal(listed.argsOmitted, 3);
    assert.equal(commandLine(listed), 'sh -c … (3 more arguments)');
    assert.equal(report(pbJob(), NOW).argsOmitted, 0);
  });

  it('renders the EXIT column', () => {
    const base = report(pbJob(), NOW);
    assert.equal(exitCell(base), '-');
    assert.equal(exitCell({ ...base, exitCode: 3 }), '3');
    assert.equal(exitCell({ ...base, signal: 'SIGKILL', oomKilled: true }), 'SIGKILL (OOM)');
  });

  it('query: facts with units people read', () => {
    const text = renderJobDetails(report(pbJob(), NOW), NOW);
    assert.match(text, /^ID +3f2a9c1e-0000-4000-8000-000000000001$/m);
    assert.match(text, /^State +running \(pid 4242\)$/m);
    assert.match(text, /^Command +sh -c 'echo '\\''hi there'\\'''$/m);
    assert.match(text, /^Started +2024-05-01T12:00:00.000Z \(10s ago\)$/m);
    assert.match(text, /^Limits +cpu 0.5, memory 128 MiB, \/dev\/sda read 10 MiB\/s$/m);
    assert.match(text, /^CPU +2s \(user 1.5s, system 500ms\), 20% of one CPU on average$/m);
    assert.match(text, /^Memory +64 MiB now, 80 MiB peak$/m);
    assert.match(text, /^Processes +3$/m);
    assert.match(text, /^IO 8:0 +read 9.54 MiB \(1 MB\/s on average\), written 0 B \(0 B\/s on average\); 0 reads, 0 writes$/m);
    assert.doesNotMatch(text, /^(Name|Labels) /m, 'no name, no labels: no lines for them');
    const named = renderJobDetails(report(pbJob({ name: 'nightly', labels: { tier: 'web', note: 'two words' } }), NOW), NOW);
    assert.match(named, /^Name +nightly$/m);
    // Each label as the --label argument that gives it, quoted as a shell reads it back.
    assert.match(named, /^Labels +tier=web 'note=two words'$/m);
    const ended = renderJobDetails(
      report(pbJob({ state: pb.JobState.JOB_STATE_FAILED, signal: 'SIGKILL', oomKilled: true, reason: 'killed by SIGKILL (out of memory)', finishedAt: new Date('2024-05-01T12:00:04Z') }), NOW),
      NOW,
    );
    assert.match(ended, /^State +failed$/m);
    assert.match(ended, /^Result +killed by SIGKILL \(out of memory\)$/m);
    assert.match(ended, /^OOM +the kernel killed/m);
    assert.match(ended, /^Duration +4s$/m);
    assert.doesNotMatch(ended, /now/);
  });

  it('list: one row per job, a HOST column for several hosts', () => {
    const job = report(pbJob(), NOW);
    const text = renderJobTable([{ ...job, context: 'east' }], NOW, true);
    assert.equal(
      text,
      'HOST  ID                                    NAME  STATE    EXIT  CREATED  DURATION  OWNER  COMMAND\n' +
        `east  ${job.id}  -     running  -     10s ago  10s       alice  ${commandLine(job)}\n`,
    );
    const named = report(pbJob({ name: 'nightly-build' }), NOW);
    assert.match(renderJobTable([named], NOW), new RegExp(`^${named.id}  nightly-build  running  `, 'm'));
  });
});

describe('log output', () => {
  it('timestamps with microseconds', () => {
    assert.equal(formatMicros(1_714_564_800_123_456), '2024-05-01T12:00:00.123456Z');
    assert.equal(formatMicros(1_714_564_800_000_007), '2024-05-01T12:00:00.000007Z');
  });

  it('prefixes each line start, across chunks', () => {
    const first = prefixLines(Buffer.from('a\nb'), 'T ', true);
    assert.equal(first.output.toString(), 'T a\nT b');
    assert.equal(first.atLineStart, false);
    const second = prefixLines(Buffer.from('c\n\nd\n'), 'U ', first.atLineStart);
    assert.equal(second.output.toString(), 'c\nU \nU d\n');
    assert.equal(second.atLineStart, true);
    assert.equal(prefixLines(Buffer.alloc(0), 'T ', true).output.length, 0);
  });

  it('markers as sentences', () => {
    assert.equal(describeMarker(Buffer.from('{"event":"truncated","limitBytes":1048576}')), "the job's log reached its size cap (1 MiB); later output was not kept");
    // The identity's log quota is not the job's size cap: it is freed by removing finished jobs.
    assert.equal(
      describeMarker(Buffer.from('{"event":"truncated","reason":"identity-quota","limitBytes":3145728}')),
      "the logs of the job's owner reached their quota (3 MiB), identityLimits.logBytes; later output was not kept; remove finished jobs to free their logs (job-cli remove ID)",
    );
    assert.equal(describeMarker(Buffer.from('{"event":"dropped","reason":"write-error","error":"ENOSPC","bytes":10}')), "10 B of the job's output could not be written to its log (write error ENOSPC)");
    assert.equal(describeMarker(Buffer.from('{"event":"new"}')), 'log marker: {"event":"new"}');
  });

  it('--json chunks: text when it is UTF-8, base64 too when it is not', () => {
    const base = { timeUnixMicros: 1_714_564_800_000_000, offset: 0, nextOffset: 30 };
    assert.deepEqual(chunkJson({ ...base, stream: 'stderr', data: Buffer.from('héllo\n') }), {
      type: 'output', stream: 'stderr', time: '2024-05-01T12:00:00.000000Z', offset: 0, nextOffset: 30, data: 'héllo\n',
    });
    const binary = chunkJson({ ...base, stream: 'stdout', data: Buffer.from([0xff, 0x00, 0x41]) });
    assert.equal(binary.dataBase64, '/wBB');
    assert.deepEqual(chunkJson({ ...base, stream: 'marker', data: Buffer.from('{"event":"truncated","limitBytes":5}') }).event, { event: 'truncated', limitBytes: 5 });
  });

  const chunk = (stream: 'stdout' | 'stderr', text: string) => ({ timeUnixMicros: 0, offset: 0, nextOffset: 1, stream, data: Buffer.from(text) });
  const printerOn = (stdout: Writable, stderr: Writable, flags: { json?: boolean; timestamps?: boolean } = {}) =>
    new LogPrinter({ stdout, stderr, json: flags.json ?? false, timestamps: flags.timestamps ?? false, note: () => undefined });

  it('lets the client reuse chunk memory only when what it writes leaves the process (or is a copy)', () => {
    // A PassThrough keeps the very buffer it is given: reusing it would change what its reader gets.
    assert.equal(printerOn(new PassThrough(), new PassThrough()).handsOffData, false);
    assert.equal(printerOn(new PassThrough(), new PassThrough(), { json: true }).handsOffData, true);
    assert.equal(printerOn(new PassThrough(), new PassThrough(), { timestamps: true }).handsOffData, true);
    assert.equal(printerOn(process.stdout, process.stderr).handsOffData, true);
  });

  it('written() waits for every write to be called back, on both streams; a stream destroyed meanwhile ends the wait', async () => {
    const calls: ((error?: Error | null) => void)[] = [];
    // Holds each write's callback; an empty write (how the printer asks for the ones before it) calls back at once.
    const held = () => new Writable({ write: (data: Buffer, _encoding, callback) => (data.length === 0 ? callback() : calls.push(callback)), highWaterMark: 1 << 20 });
    const stdout = held();
    const stderr = held();
    const printer = printerOn(stdout, stderr);
    await printer.chunk(chunk('stdout', 'a'));
    await printer.chunk(chunk('stderr', 'b'));
    let done = false;
    const waiting = printer.written().then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false, 'nothing was called back yet');
    calls.shift()!();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false, 'stderr\'s write is still out');
    calls.shift()!();
    await waiting;

    await printer.chunk(chunk('stdout', 'c'));
    const again = printer.written();
    stdout.destroy();
    await again;
    await printer.written(); // nothing left: at once
  });
});

describe('top', () => {
  const reading = (job: Partial<pb.Job>, atMs: number): Reading => ({ job: report(pbJob(job), NOW), atMs });

  it('CPU and disk rates over the interval; none on a first reading', () => {
    const before = reading({}, 0);
    const later = reading({ stats: { ...pbJob().stats!, cpuUsageMicros: 2_500_000, io: [{ device: '8:0', readBytes: 12_000_000, writeBytes: 1000, readOps: 0, writeOps: 0 }] } }, 2000);
    const [first] = topRows(new Map(), [before]);
    assert.equal(first!.cpuPercent, null);
    assert.equal(first!.ioReadBytesPerSecond, null);
    const [row] = topRows(new Map([[before.job.id, before]]), [later]);
    assert.equal(row!.cpuPercent, 25); // 0.5 s of CPU in 2 s
    assert.equal(row!.memoryBytes, 64 * 2 ** 20);
    assert.equal(row!.memoryPercent, 50);
    assert.equal(row!.ioReadBytesPerSecond, 1_000_000);
    assert.equal(row!.ioWriteBytesPerSecond, 500);
    const text = renderTop([row!]);
    assert.match(text, /^ID +CPU % +MEM USAGE \/ LIMIT +MEM % +PIDS +DISK READ\/WRITE +COMMAND\n/);
    assert.match(text, /25% +64 MiB \/ 128 MiB +50% +3 +1 MB\/s \/ 500 B\/s +sh -c/);
  });

  it('a job without a memory limit has no MEM %', () => {
    const [row] = topRows(new Map(), [reading({ limits: { io: [] } }, 0)]);
    assert.equal(row!.memoryLimitBytes, null);
    assert.equal(row!.memoryPercent, null);
  });
});

