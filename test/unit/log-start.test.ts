// Where a tail (`tail -n N`) or `since` starts, found by walking record headers: against a naive
// reading of the whole log, on hand-made logs with small, big, mixed-stream and timed records.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import fc from 'fast-check';

import { ValidationError } from '../../src/errors';
import { CompleteLog, followLog } from '../../src/logs/follower';
import { findStart } from '../../src/logs/tail';
import { fileHeader, record } from '../helpers/log-files';

const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-log-start-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Written {
  stream: 1 | 2 | 3;
  data: Buffer;
  timeNs: bigint;
}

let n = 0;
function logOf(records: readonly Written[]): { file: string; size: number } {
  const file = path.join(dir, `log-${n++}`);
  const bytes = Buffer.concat([fileHeader(), ...records.map((r) => record(r.stream, r.data, r.timeNs))]);
  writeFileSync(file, bytes);
  return { file, size: bytes.length };
}

/** What `tail -n lines` prints of the selected streams' bytes, concatenated. */
function naiveTail(text: Buffer, lines: number): Buffer {
  if (lines === 0) return Buffer.alloc(0);
  let end = text.length;
  if (end > 0 && text[end - 1] === 0x0a) end--; // a final newline ends the last line, it does not start one
  let seen = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (text[i] === 0x0a && ++seen === lines) return text.subarray(i + 1);
  }
  return text;
}

/** The selected streams' bytes from a start on, as a reader given that start delivers them. */
async function bytesFrom(file: string, size: number, start: { from: number; skip: number }, streams: readonly ('stdout' | 'stderr')[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  let skip = start.skip;
  for await (const r of followLog(new CompleteLog(file, size), { from: start.from, streams })) {
    const data = skip > 0 ? r.data.subarray(skip) : r.data;
    skip = 0;
    if (r.stream !== 'marker') parts.push(Buffer.from(data));
  }
  return Buffer.concat(parts);
}

const chunk = fc.record({
  stream: fc.constantFrom<1 | 2>(1, 2),
  // Mostly short lines; sometimes a big record (skipped by the header walk, not read).
  data: fc.oneof(
    { weight: 5, arbitrary: fc.array(fc.constantFrom('a', 'b', '\n'), { minLength: 1, maxLength: 40 }).map((c) => Buffer.from(c.join(''))) },
    { weight: 1, arbitrary: fc.integer({ min: 4096, max: 300_000 }).map((size) => Buffer.alloc(size, 0x61)) },
  ),
});

describe('findStart (tail and since by the record headers)', () => {
  it('tail -n of the selected streams, whatever the mix of small and big records', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(chunk, { minLength: 0, maxLength: 60 }),
        fc.integer({ min: 0, max: 30 }),
        fc.constantFrom<('stdout' | 'stderr')[]>(['stdout', 'stderr'], ['stdout'], ['stderr']),
        async (chunks, lines, streams) => {
          const records = chunks.map((c, i) => ({ ...c, timeNs: BigInt(i + 1) }));
          const { file, size } = logOf(records);
          const start = await findStart(file, { until: size, tailLines: lines, streams });
          const selected = records.filter((r) => streams.includes(r.stream === 1 ? 'stdout' : 'stderr'));
          const want = naiveTail(Buffer.concat(selected.map((r) => r.data)), lines);
          const got = await bytesFrom(file, size, start, streams);
          assert.ok(got.equals(want), `tail -n ${lines} of ${streams.join('+')}: got ${got.length} bytes, want ${want.length}`);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('since: the first record captured at or after the time; with a tail, the later of the two starts', async () => {
    const records: Written[] = [
      { stream: 1, data: Buffer.from('one\n'), timeNs: 10n },
      { stream: 2, data: Buffer.alloc(200_000, 0x62), timeNs: 20n },
      { stream: 1, data: Buffer.from('two\nthree\n'), timeNs: 30n },
      { stream: 3, data: Buffer.from('marker'), timeNs: 40n },
      { stream: 1, data: Buffer.from('four\n'), timeNs: 50n },
    ];
    const { file, size } = logOf(records);
    const offsets: number[] = [];
    for await (const r of followLog(new CompleteLog(file, size))) offsets.push(r.offset);
    assert.deepEqual(await findStart(file, { until: size, sinceNs: 25n }), { from: offsets[2], skip: 0 });
    assert.deepEqual(await findStart(file, { until: size, sinceNs: 51n }), { from: size, skip: 0 });
    assert.deepEqual(await findStart(file, { until: size, sinceNs: 0n }), { from: offsets[0], skip: 0 });
    // Since 25 (record 2) and the last two stdout lines ("three", "four"): the tail is later.
    assert.deepEqual(await findStart(file, { until: size, sinceNs: 25n, tailLines: 2, streams: ['stdout'] }), { from: offsets[2], skip: 4 });
    // Since 45 is later than that tail.
    assert.deepEqual(await findStart(file, { until: size, sinceNs: 45n, tailLines: 2, streams: ['stdout'] }), { from: offsets[4], skip: 0 });
  });

  it('never starts before `from`; a `from` that is not a record boundary is refused', async () => {
    const { file, size } = logOf([
      { stream: 1, data: Buffer.from('a\nb\n'), timeNs: 1n },
      { stream: 1, data: Buffer.from('c\nd\n'), timeNs: 2n },
    ]);
    const second = 16 + 24 + 4;
    assert.deepEqual(await findStart(file, { from: second, until: size, tailLines: 100 }), { from: second, skip: 0 });
    await assert.rejects(findStart(file, { from: second + 1, until: size, tailLines: 1 }), ValidationError);
  });
});
