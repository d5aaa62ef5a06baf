// Property-based fuzzing of the log reader (src/logs) with fast-check: well-formed logs written in
// the on-disk format (docs/log-format.md), then damaged — truncated anywhere, bytes flipped, ranges
// zeroed or overwritten with garbage, garbage appended — and read every way the daemon reads them
// (records from a boundary, followers from any offset, the crash-recovery scan and repair, tail).
// Properties: no exception but the documented ones (CorruptLogError → DATA_LOSS, ValidationError →
// INVALID_ARGUMENT), termination, and every record that lies wholly before the first damaged byte
// is returned exactly as written. Used by the reliability suite and, with few runs, by a unit test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';

import fc from 'fast-check';

import { ValidationError } from '../../src/errors';
import { CompleteLog, followLog } from '../../src/logs/follower';
import { CorruptLogError, FILE_HEADER_SIZE, FILE_MAGIC, FORMAT_VERSION, RECORD_HEADER_SIZE, RECORD_MAGIC } from '../../src/logs/format';
import { openLog, readRecords, type LogRecord } from '../../src/logs/reader';
import { repairLog, scanLog } from '../../src/logs/repair';
import { findStart } from '../../src/logs/tail';

interface WrittenRecord {
  stream: 1 | 2 | 3;
  data: Buffer;
  offset: number;
  end: number;
}

type Damage =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'zero'; at: number; length: number }
  | { kind: 'garbage'; at: number; bytes: Uint8Array }
  | { kind: 'append'; bytes: Uint8Array };

function encodeLog(records: { stream: 1 | 2 | 3; data: Uint8Array }[]): { file: Buffer; written: WrittenRecord[] } {
  const header = Buffer.alloc(FILE_HEADER_SIZE);
  FILE_MAGIC.copy(header, 0);
  header.writeUInt32LE(FILE_HEADER_SIZE, 8);
  header.writeUInt32LE(FORMAT_VERSION, 12);
  const parts: Buffer[] = [header];
  const written: WrittenRecord[] = [];
  let offset = FILE_HEADER_SIZE;
  for (const [i, record] of records.entries()) {
    const h = Buffer.alloc(RECORD_HEADER_SIZE);
    h.writeUInt32LE(RECORD_MAGIC, 0);
    h[4] = record.stream;
    h.writeUInt32LE(record.data.length, 8);
    h.writeBigUInt64LE(1_700_000_000_000_000_000n + BigInt(i), 12);
    h.writeUInt32LE(crc32(h.subarray(0, 20)), 20);
    const data = Buffer.from(record.data);
    parts.push(h, data);
    written.push({ stream: record.stream, data, offset, end: offset + RECORD_HEADER_SIZE + data.length });
    offset += RECORD_HEADER_SIZE + data.length;
  }
  return { file: Buffer.concat(parts), written };
}

function damage(file: Buffer, d: Damage): { file: Buffer; firstDamaged: number } {
  const copy = Buffer.from(file);
  if (copy.length === 0 && d.kind !== 'append') return { file: copy, firstDamaged: 0 };
  switch (d.kind) {
    case 'truncate': {
      const at = d.at % (copy.length + 1);
      return { file: copy.subarray(0, at), firstDamaged: at };
    }
    case 'flip': {
      const at = d.at % copy.length;
      copy[at] = copy[at]! ^ (d.xor || 1);
      return { file: copy, firstDamaged: at };
    }
    case 'zero': {
      const at = d.at % copy.length;
      copy.fill(0, at, Math.min(copy.length, at + d.length));
      return { file: copy, firstDamaged: at };
    }
    case 'garbage': {
      const at = d.at % copy.length;
      Buffer.from(d.bytes).copy(copy, at); // clipped at the end of the file
      return { file: copy, firstDamaged: d.bytes.length === 0 ? copy.length : at };
    }
    case 'append':
      return { file: Buffer.concat([copy, Buffer.from(d.bytes)]), firstDamaged: copy.length };
  }
}

const recordArb = fc.record({
  stream: fc.constantFrom<1 | 2 | 3>(1, 2, 3),
  data: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 1000, maxLength: 70_000 }), fc.constant(new Uint8Array(0))),
});

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('zero' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('garbage' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 48 }) }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 48 }) }),
);

const documented = (error: unknown) => error instanceof CorruptLogError || error instanceof ValidationError;

async function drain(records: AsyncIterable<LogRecord>, limit: number): Promise<{ records: LogRecord[]; error?: unknown }> {
  const out: LogRecord[] = [];
  try {
    for await (const record of records) {
      out.push({ ...record, data: Buffer.from(record.data) });
      assert.ok(out.length <= limit, 'more records than were written');
    }
    return { records: out };
  } catch (error) {
    return { records: out, error };
  }
}

export interface LogFuzzFigures {
  runs: number;
  damagedLogs: number;
  recordsChecked: number;
}

/** Runs the log-reader properties; throws (with fast-check's counterexample and seed) on a failure. */
export async function fuzzLogReader(options: { numRuns: number; seed: number; timeLimitMs?: number }): Promise<LogFuzzFigures> {
  const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-logfuzz-'));
  const figures: LogFuzzFigures = { runs: 0, damagedLogs: 0, recordsChecked: 0 };
  let n = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(recordArb, { maxLength: 12 }), fc.array(damageArb, { maxLength: 3 }), fc.nat(), fc.integer({ min: 0, max: 50 }), async (records, damages, fromSeed, lines) => {
        figures.runs++;
        const { file: clean, written } = encodeLog(records);
        let file = clean;
        let firstDamaged = clean.length;
        for (const d of damages) {
          const result = damage(file, d);
          file = result.file;
          firstDamaged = Math.min(firstDamaged, result.firstDamaged);
        }
        if (damages.length > 0) figures.damagedLogs++;
        const intact = written.filter((r) => r.end <= firstDamaged && r.end <= file.length);
        const logPath = path.join(dir, `log-${n++}.log`);
        writeFileSync(logPath, file);

        // 1. Every record from the start.
        let handle;
        try {
          handle = await openLog(logPath);
        } catch (error) {
          assert.ok(documented(error), `openLog threw ${String(error)}`);
          assert.ok(firstDamaged < FILE_HEADER_SIZE, 'a log with an intact header was refused');
          return;
        }
        try {
          const all = await drain(readRecords(handle, { from: FILE_HEADER_SIZE, until: file.length }), written.length + 1);
          if (all.error !== undefined) assert.ok(documented(all.error), `readRecords threw ${String(all.error)}`);
          for (const [i, record] of intact.entries()) {
            const got = all.records[i];
            assert.ok(got !== undefined, `intact record ${i} at ${record.offset} not returned (${String(all.error)})`);
            assert.equal(got.offset, record.offset);
            assert.equal(got.nextOffset, record.end);
            assert.ok(got.data.equals(record.data), `intact record ${i} altered`);
            figures.recordsChecked++;
          }
        } finally {
          await handle.close();
        }

        // 2. A follower from an arbitrary offset: the records, or a documented refusal.
        const offsets = [0, FILE_HEADER_SIZE, ...written.map((r) => r.offset), ...written.map((r) => r.end), fromSeed % (file.length + 2)];
        const from = offsets[fromSeed % offsets.length]!;
        const followed = await drain(followLog(new CompleteLog(logPath, file.length), { from }), written.length + 1);
        if (followed.error !== undefined) assert.ok(documented(followed.error), `followLog from ${from} threw ${String(followed.error)}`);

        // 3. Crash recovery: scan and repair cut at the last complete record; then the log reads clean.
        const scan = await scanLog(logPath);
        assert.ok(scan.validBytes >= FILE_HEADER_SIZE && scan.validBytes <= file.length);
        const lastIntact = intact.at(-1)?.end ?? FILE_HEADER_SIZE;
        assert.ok(scan.validBytes >= lastIntact, `repair would cut intact records (${scan.validBytes} < ${lastIntact})`);
        await repairLog(logPath);
        const repaired = await openLog(logPath);
        try {
          const again = await drain(readRecords(repaired), written.length + 1);
          assert.equal(again.error, undefined, `a repaired log does not read clean: ${String(again.error)}`);
          assert.equal(again.records.at(-1)?.nextOffset ?? FILE_HEADER_SIZE, scan.validBytes);
        } finally {
          await repaired.close();
        }

        // 4. tail -n on the repaired log.
        const tail = await findStart(logPath, { until: scan.validBytes, tailLines: lines });
        assert.ok(tail.from >= FILE_HEADER_SIZE && tail.from <= scan.validBytes);
      }),
      { numRuns: options.numRuns, seed: options.seed, ...(options.timeLimitMs === undefined ? {} : { interruptAfterTimeLimit: options.timeLimitMs }) },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}
