// The log reader and follower against hand-made log files (no root; the reader reads through the addon's readCached).
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { ValidationError } from '../../src/errors';
import { CompleteLog, followLog, type LogSource } from '../../src/logs/follower';
import { CorruptLogError } from '../../src/logs/format';
import { openLog, readRecords } from '../../src/logs/reader';
import { repairLog } from '../../src/logs/repair';
import { fileHeader, record } from '../helpers/log-files';

const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-logs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function logFile(...records: Buffer[]): string {
  const file = path.join(dir, `log-${n++}`);
  writeFileSync(file, Buffer.concat([fileHeader(), ...records]));
  return file;
}

async function collect(source: LogSource, options: Parameters<typeof followLog>[1] = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const r of followLog(source, options)) out.push(`${r.stream}:${r.data.toString()}`);
  return out;
}

/** A log someone appends to, with followers woken like the worker's LiveLog does. */
class GrowingLog implements LogSource {
  size: number;
  done = false;
  waiters: (() => void)[] = [];
  constructor(readonly path: string) {
    this.size = 16;
  }
  committed(): number {
    return this.size;
  }
  isComplete(): boolean {
    return this.done;
  }
  waitBeyond(offset: number): Promise<void> {
    if (this.done || this.size > offset) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  append(buf: Buffer): void {
    appendFileSync(this.path, buf);
    this.size += buf.length;
    this.waiters.splice(0).forEach((w) => w());
  }
  finish(): void {
    this.done = true;
    this.waiters.splice(0).forEach((w) => w());
  }
}

describe('log reader', () => {
  it('decodes records of every stream, including empty and binary payloads', async () => {
    const binary = Buffer.from([0, 255, 10, 13, 0]);
    const file = logFile(record(1, 'out'), record(2, ''), record(3, '{"event":"x"}'), record(1, binary));
    const handle = await openLog(file);
    const records = [];
    for await (const r of readRecords(handle)) records.push(r);
    await handle.close();
    assert.deepEqual(records.map((r) => r.stream), ['stdout', 'stderr', 'marker', 'stdout']);
    assert.deepEqual(records[3]!.data, binary);
    assert.equal(records[1]!.offset, 16 + 24 + 3);
    assert.equal(records[1]!.nextOffset, records[2]!.offset);
  });

  it('reads records larger than its read buffer', async () => {
    const big = Buffer.alloc(3 << 20, 7);
    const file = logFile(record(1, 'a'), record(1, big), record(2, 'z'));
    assert.deepEqual((await collect(new CompleteLog(file, 16 + 24 * 3 + 1 + big.length + 1))).map((s) => s.length), [
      'stdout:a'.length,
      'stdout:'.length + big.length,
      'stderr:z'.length,
    ]);
  });

  it('refuses a file that is not a log, and corrupt headers', async () => {
    const notLog = path.join(dir, 'not-a-log');
    writeFileSync(notLog, 'hello world, not a log at all');
    await assert.rejects(openLog(notLog), CorruptLogError);
    const bad = record(1, 'x');
    bad[21] ^= 0xff; // break the CRC
    const file = logFile(record(1, 'ok'), bad);
    await assert.rejects(collect(new CompleteLog(file, 16 + 26 + 25)), /checksum mismatch/);
  });

  it('stops at a torn tail, and repair cuts it off', async () => {
    const whole = record(1, 'complete');
    const torn = record(1, 'this record was cut short').subarray(0, 30);
    const file = logFile(whole, torn);
    const scan = await repairLog(file);
    assert.equal(scan.validBytes, 16 + whole.length);
    assert.equal(scan.fileBytes, 16 + whole.length + torn.length);
    assert.deepEqual(await collect(new CompleteLog(file, scan.validBytes)), ['stdout:complete']);
    assert.equal((await repairLog(file)).fileBytes, scan.validBytes);
  });
});

describe('log follower', () => {
  it('filters streams but always delivers markers, and skips records before `since`', async () => {
    const file = logFile(record(1, 'o', 10n), record(2, 'e', 20n), record(3, '{}', 30n), record(1, 'late', 40n));
    const source = new CompleteLog(file, 16 + 25 + 25 + 26 + 28);
    assert.deepEqual(await collect(source, { streams: ['stderr'] }), ['stderr:e', 'marker:{}']);
    assert.deepEqual(await collect(source, { sinceNs: 25n }), ['marker:{}', 'stdout:late']);
  });

  it('refuses bad offsets with a validation error', async () => {
    const file = logFile(record(1, 'hello'));
    const source = new CompleteLog(file, 16 + 29);
    await assert.rejects(collect(source, { from: 18 }), (e: unknown) => e instanceof ValidationError && e.field === 'from');
    for (const from of [1, 15]) {
      await assert.rejects(collect(source, { from }), (e: unknown) => e instanceof ValidationError && /not the start of a record \(the first is at 16\)/.test(e.message), `from ${from}`);
    }
    await assert.rejects(collect(source, { from: 1000 }), /beyond the end/);
    await assert.rejects(collect(source, { from: -1 }), /non-negative/);
    assert.deepEqual(await collect(source, { from: 16 + 29 }), []);
  });

  it('an offset a few bytes short of the end is refused, followed or not, and never spins (less than a record header left)', async () => {
    const file = logFile(record(1, 'hello'), record(1, 'world'));
    const end = 16 + 29 + 29;
    for (const from of [end - 3, end - 23, end - 24]) {
      for (const follow of [false, true]) {
        await assert.rejects(collect(new CompleteLog(file, end), { from, follow }), (e: unknown) => e instanceof ValidationError && e.field === 'from', `from ${from}, follow ${follow}`);
      }
    }
  });

  it('a log file shorter than its committed size (cut under its reader) is damage at the first missing record, followed or not', async () => {
    const file = logFile(record(1, 'hello'), record(1, 'world'));
    for (const follow of [false, true]) {
      const seen: string[] = [];
      await assert.rejects(
        (async () => {
          for await (const r of followLog(new CompleteLog(file, 16 + 29 + 29 + 29), { follow })) seen.push(r.data.toString());
        })(),
        (e: unknown) => e instanceof CorruptLogError && !(e instanceof ValidationError) && e.offset === 16 + 29 + 29 && /before the log's committed end at byte 103/.test(e.message),
      );
      assert.deepEqual(seen, ['hello', 'world']);
    }
  });

  it('a damaged first record is damage (CorruptLogError), not a bad offset, whether or not the start was asked for', async () => {
    const damaged = Buffer.concat([fileHeader(), record(1, 'hello'), record(2, 'world')]);
    damaged[16 + 5] ^= 0xff; // inside the first record's header: its CRC no longer matches
    const file = logFile(damaged.subarray(16));
    const source = new CompleteLog(file, damaged.length);
    for (const options of [{}, { from: 16 }, { from: 0 }]) {
      await assert.rejects(collect(source, options), (e: unknown) => e instanceof CorruptLogError && !(e instanceof ValidationError), JSON.stringify(options));
    }
  });

  it('damage at a `from` known to be a boundary (where a shared message ended) is damage, not a bad offset', async () => {
    const damaged = Buffer.concat([fileHeader(), record(1, 'hello'), record(2, 'world')]);
    const second = 16 + 29;
    damaged[second + 5] ^= 0xff; // the second record's header no longer matches its CRC
    const file = logFile(damaged.subarray(16));
    const source = new CompleteLog(file, damaged.length);
    await assert.rejects(collect(source, { from: second }), (e: unknown) => e instanceof ValidationError && e.field === 'from', 'asked for by a client: its offset');
    await assert.rejects(collect(source, { from: second, fromIsBoundary: true }), (e: unknown) => e instanceof CorruptLogError && !(e instanceof ValidationError));
  });

  it('follows growth without gaps or duplicates and ends when complete', async () => {
    const file = logFile();
    const log = new GrowingLog(file);
    const seen = collect(log, { follow: true });
    for (let i = 0; i < 100; i++) {
      log.append(record(i % 2 === 0 ? 1 : 2, `${i},`));
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    log.finish();
    const out = await seen;
    assert.equal(out.map((s) => s.split(':')[1]).join(''), Array.from({ length: 100 }, (_, i) => `${i},`).join(''));
  });

  it('without follow, stops at the current end', async () => {
    const file = logFile(record(1, 'first'));
    const log = new GrowingLog(file);
    log.size = 16 + 29;
    assert.deepEqual(await collect(log), ['stdout:first']);
  });

  it('an aborted follower stops waiting', async () => {
    const file = logFile();
    const controller = new AbortController();
    const log: LogSource = {
      path: file,
      committed: () => 16,
      isComplete: () => false,
      waitBeyond: (_offset, signal) =>
        new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true })),
    };
    const following = collect(log, { follow: true, signal: controller.signal });
    controller.abort(new Error('client went away'));
    await assert.rejects(following, /client went away/);
  });
});
