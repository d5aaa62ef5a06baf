// The journal (src/worker/journal*.ts, state-store.ts) on plain files: its line codec, bounded
// entries, reading as a stream (lines across read chunks, a torn tail, oversized damage), the
// format 1 migration, damaged lines copied aside, and compaction while appends go on. No root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { HOST_ISOLATION } from '../../src/worker/isolation';
import { checkLabels, LABEL_BOUNDS } from '../../src/worker/job-labels';
import { SPEC_BOUNDS, type ResolvedJobSpec } from '../../src/worker/job-spec';
import { ARGS_PREVIEW_BYTES, INLINE_SPEC_BYTES, newJobRecord, type JobRecord } from '../../src/worker/job-record';
import { decodeJournalLine, encodeJournalLine } from '../../src/worker/journal-codec';
import { MAX_JOURNAL_LINE_BYTES } from '../../src/worker/journal-reader';
import { StateStore, type StateStoreOptions } from '../../src/worker/state-store';
import { version1Line } from '../helpers/journal';

let dir: string;
let n = 0;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-journal-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function id(i = n++): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

function spec(over: Partial<ResolvedJobSpec> = {}): ResolvedJobSpec {
  return { command: 'sh', args: ['-c', 'echo hi'], env: { PATH: '/bin' }, cwd: '/', limits: {}, owner: 'alice', user: null, maxRuntimeMs: null, name: null, labels: {}, ...over };
}

/** A spec as big as StartJob allows: 1 MiB of argv + env, in 128 KiB strings. */
function bigSpec(): ResolvedJobSpec {
  const value = 'x'.repeat(SPEC_BOUNDS.stringBytes - 16);
  return spec({ args: ['a1', 'a2', value, value, value, value], env: { PATH: '/bin', A: value, B: value, C: value } });
}

function record(jobId: string, s: ResolvedJobSpec = spec()): JobRecord {
  return { ...newJobRecord(jobId, s, new Date('2024-05-01T12:00:00Z'), HOST_ISOLATION), state: 'running', pid: 42, startedAt: '2024-05-01T12:00:00.001Z' };
}

function finished(r: JobRecord): JobRecord {
  return { ...r, state: 'exited', outcome: { exitCode: 0, signal: null, oomKilled: false, stoppedBy: null, timedOut: false, reason: 'exited with code 0' }, finishedAt: '2024-05-01T12:00:01Z' };
}

const journalPath = () => path.join(dir, 'journal');
const line = (text: string) => Buffer.from(text.replace(/\n$/, ''));

/** The state the journal file on disk gives a job now (its last intact entry). */
function lastStateOnDisk(jobId: string): string | undefined {
  let state: string | undefined;
  for (const text of readFileSync(journalPath(), 'utf8').split('\n')) {
    const entry = text === '' ? undefined : decodeJournalLine(Buffer.from(text))?.entry;
    if (entry?.op === 'put' && entry.record.id === jobId) state = entry.record.state;
  }
  return state;
}

async function openStore(options: StateStoreOptions = {}): Promise<{ store: StateStore; records: Map<string, JobRecord>; contents: Awaited<ReturnType<StateStore['readAll']>> }> {
  const store = new StateStore(dir, options);
  await store.init();
  const contents = await store.readAll();
  await store.open(contents.journal.records.values());
  return { store, records: contents.journal.records, contents };
}

describe('journal lines', () => {
  it('round-trip; one flipped byte anywhere makes the line damaged, never another record', () => {
    const r = finished(record(id()));
    const text = encodeJournalLine({ op: 'put', record: r });
    assert.deepEqual(decodeJournalLine(line(text))?.entry, { op: 'put', record: r });
    for (let at = 0; at < text.length - 1; at += 7) {
      const damaged = Buffer.from(text.slice(0, -1));
      damaged[at] = damaged[at]! ^ 0x04;
      assert.equal(decodeJournalLine(damaged), undefined, `flip at ${at}`);
    }
    assert.equal(decodeJournalLine(Buffer.from(text.slice(0, 40))), undefined, 'torn');
  });

  it('a big spec is not in the record: the leading arguments within 1 KiB, how many are left out', () => {
    const r = record(id(), bigSpec());
    assert.equal(r.specFile, true);
    assert.equal(r.spec.env, null);
    assert.deepEqual(r.spec.args, ['a1', 'a2']);
    assert.equal(r.spec.argsOmitted, 4);
    assert.ok(Buffer.byteLength(JSON.stringify(r.spec.args)) <= ARGS_PREVIEW_BYTES);
    const small = record(id());
    assert.equal(small.specFile, false);
    assert.deepEqual(small.spec.env, { PATH: '/bin' });
  });

  it('every line is bounded whatever the spec: under 96 KiB at worst (control characters escape to 6 bytes, quotes in labels to 2)', () => {
    const control = '\u0001'.repeat(SPEC_BOUNDS.pathBytes);
    // Just under the inline bound, in the costliest characters; the longest command, cwd, owner.
    const args = ['\u0001'.repeat(Math.floor(INLINE_SPEC_BYTES / 6) - 40)];
    // A name and labels as big as checkLabels lets them be, in the costliest characters labels may hold.
    const labels = checkLabels('labels', Object.fromEntries(Array.from({ length: LABEL_BOUNDS.count }, (_, i) => [`k${String(i).padStart(2, '0')}`, '"'.repeat(Math.floor(LABEL_BOUNDS.totalBytes / LABEL_BOUNDS.count) - 3)])));
    const naming = { name: 'n'.repeat(64), labels };
    const worst = spec({ command: control, cwd: `/${control.slice(1)}`, owner: control.slice(0, SPEC_BOUNDS.ownerBytes), args, env: {}, ...naming });
    const r = finished(record(id(), worst));
    assert.equal(r.specFile, false);
    assert.ok(Buffer.byteLength(encodeJournalLine({ op: 'put', record: r })) < 96 << 10);
    // A big spec goes to its file; its name and labels stay in the record (listings filter by them).
    const big = finished(record(id(), { ...bigSpec(), ...naming }));
    assert.equal(big.specFile, true);
    assert.deepEqual([big.spec.name, big.spec.labels], [naming.name, labels]);
    assert.ok(Buffer.byteLength(encodeJournalLine({ op: 'put', record: big })) < 24 << 10);
    assert.ok(Buffer.byteLength(encodeJournalLine({ op: 'put', record: finished(record(id(), bigSpec())) })) < 4 << 10);
  });
});

describe('reading the journal', () => {
  it('as a stream: lines across read chunks, the last entry of each job wins, a torn tail is damage', async () => {
    const a = id();
    const b = id();
    // Long lines (format 1, 1 MiB specs) straddle the 1 MiB reads.
    writeFileSync(journalPath(), version1Line(a, bigSpec(), 'running') + version1Line(b, bigSpec(), 'running') + version1Line(a, bigSpec(), 'exited'));
    appendFileSync(journalPath(), encodeJournalLine({ op: 'put', record: finished(record(b)) }).slice(0, 30));
    const { store, records, contents } = await openStore();
    assert.equal(records.get(a)?.state, 'exited');
    assert.equal(records.get(b)?.state, 'running');
    assert.equal(contents.journal.damage.count, 1);
    assert.equal(contents.journal.damage.tornTail, true);
    await store.close();
  });

  it('a line longer than any entry can be is damage, copied aside cut to the limit', async () => {
    const a = id();
    writeFileSync(journalPath(), Buffer.concat([Buffer.from(encodeJournalLine({ op: 'put', record: record(a) })), Buffer.alloc(MAX_JOURNAL_LINE_BYTES + 10, 0x41), Buffer.from('\n')]));
    const { store, records, contents } = await openStore();
    assert.ok(records.has(a));
    assert.equal(contents.journal.damage.count, 1);
    assert.equal(contents.journal.damage.lines[0]!.length, MAX_JOURNAL_LINE_BYTES + 10);
    assert.ok(statSync(contents.journal.damage.copiedTo!).size < MAX_JOURNAL_LINE_BYTES + 200);
    await store.close();
  });

  it('damaged lines are copied aside byte for byte with their offsets and the job ids they name', async () => {
    const a = id();
    const b = id();
    const first = encodeJournalLine({ op: 'put', record: finished(record(a)) });
    const damaged = Buffer.from(encodeJournalLine({ op: 'put', record: finished(record(b)) }));
    damaged[200] = damaged[200]! ^ 0x01;
    writeFileSync(journalPath(), Buffer.concat([Buffer.from(first), damaged]));
    const { store, records, contents } = await openStore();
    assert.deepEqual([...records.keys()], [a]);
    const { damage } = contents.journal;
    assert.deepEqual(damage.lines, [{ offset: Buffer.byteLength(first), length: damaged.length - 1, ids: [b] }]);
    assert.match(path.basename(damage.copiedTo!), /^journal\.damaged-/);
    const copy = readFileSync(damage.copiedTo!);
    assert.deepEqual(copy, Buffer.concat([Buffer.from(`offset=${Buffer.byteLength(first)} length=${damaged.length - 1}\n`), damaged]));
    await store.close();
    // The journal was rewritten without the damaged line; the copy stays.
    assert.equal(readFileSync(journalPath(), 'utf8'), first);
    assert.ok(existsSync(damage.copiedTo!));
  });

  it('format 1 (the previous version): read, big specs moved to spec files, the journal rewritten bounded', async () => {
    const big = id();
    const small = id();
    const bigOne = bigSpec();
    writeFileSync(journalPath(), version1Line(big, bigOne, 'running') + version1Line(small, spec(), 'running') + version1Line(big, bigOne, 'exited'));
    const before = statSync(journalPath()).size;
    const { store, records, contents } = await openStore();
    assert.equal(contents.journal.migrated, 3);
    const migrated = records.get(big)!;
    assert.equal(migrated.version, 2);
    assert.equal(migrated.state, 'exited');
    assert.equal(migrated.specFile, true);
    assert.equal(migrated.spec.argsOmitted, 4);
    assert.deepEqual(await store.readSpec(big), bigOne, 'the whole spec, from its file');
    assert.deepEqual(records.get(small)!.spec.env, { PATH: '/bin' }, 'a small spec stays in its record');
    assert.equal(existsSync(store.specPath(small)), false);
    assert.equal(statSync(store.specPath(big)).mode & 0o777, 0o600);
    await store.close();
    const after = statSync(journalPath()).size;
    assert.ok(after < 4096 && after < before / 1000, `journal ${before} → ${after} bytes`);
    // And it reads back as the same records.
    const again = await openStore();
    assert.deepEqual(again.records.get(big), migrated);
    await again.store.close();
  });
});

describe('compaction while running', () => {
  const policy = { ratio: 3, minBytes: 16 << 10 };

  it('the journal is rewritten with the live records when it is `ratio` times their size; nothing is lost', async () => {
    const { store } = await openStore({ compaction: policy });
    const live = new Map<string, JobRecord>();
    for (let i = 0; i < 20; i++) {
      const r = record(id());
      live.set(r.id, r);
      await store.write(r, false);
    }
    // Many changes to few records: the journal grows, its live size does not.
    for (let round = 0; round < 40; round++) {
      for (const r of live.values()) {
        r.pid = round;
        await store.write(r, round % 5 === 0);
      }
      await store.compacted();
    }
    const { bytes, liveBytes, compactions } = store.journalStats();
    assert.ok(compactions >= 3, `${compactions} compactions`);
    assert.ok(bytes <= Math.max(policy.minBytes, policy.ratio * liveBytes) + 4096, `${bytes} bytes for ${liveBytes} live`);
    await store.close();
    assert.equal(existsSync(`${journalPath()}.tmp`), false);
    const again = await openStore();
    assert.deepEqual([...again.records.values()].map((r) => [r.id, r.pid]).sort(), [...live.values()].map((r) => [r.id, 39]).sort());
    await again.store.close();
  });

  it('appends and removals made while a compaction runs are in the new journal; a durable one is on disk when reported', async () => {
    const { store } = await openStore({ compaction: { ratio: 1.5, minBytes: 64 << 10 } });
    const live = new Map<string, JobRecord>();
    const removed = new Set<string>();
    let compactionsSeen = 0;
    for (let i = 0; i < 3000; i++) {
      const r = record(id());
      live.set(r.id, r);
      for (let update = 0; update < 3; update++) {
        r.pid = update;
        store.write(r, false).catch(assert.fail);
      }
      if (i % 10 === 0) await new Promise(setImmediate); // let the compaction's writes go on meanwhile
      if (i % 30 === 0) {
        r.state = 'exited';
        // Durable: on disk (in whichever file is the journal now) once this resolves.
        await store.write(r, true);
        assert.equal(lastStateOnDisk(r.id), 'exited');
      }
      if (i % 7 === 0) {
        const victim = [...live.keys()][0]!;
        await store.remove(victim);
        live.delete(victim);
        removed.add(victim);
      }
      compactionsSeen = store.journalStats().compactions;
    }
    await store.compacted();
    assert.ok(compactionsSeen >= 2, `${compactionsSeen} compactions during the appends`);
    await store.close();
    const again = await openStore();
    assert.equal(again.contents.journal.damage.count, 0);
    assert.deepEqual([...again.records.keys()].sort(), [...live.keys()].sort());
    for (const r of live.values()) assert.equal(again.records.get(r.id)!.state, r.state);
    await again.store.close();
  });

  it('a crash mid-compaction (a journal.tmp left behind) loses nothing: the journal is the one before', async () => {
    const { store } = await openStore();
    const r = finished(record(id()));
    await store.write(r, true);
    await store.close();
    const before = readFileSync(journalPath(), 'utf8');
    writeFileSync(`${journalPath()}.tmp`, 'half a compaction');
    const again = await openStore();
    assert.deepEqual(again.records.get(r.id), r);
    assert.equal(readFileSync(journalPath(), 'utf8'), before);
    assert.deepEqual(readdirSync(dir).sort(), ['journal', 'logs']);
    await again.store.close();
  });
});

describe('a rewrite that cannot write everything', () => {
  it('a journal rewritten at open but cut short (a file size limit: the write is short, not failed) replaces nothing', async () => {
    const first = await openStore();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const r = finished(record(id()));
      ids.push(r.id);
      await first.store.write(r, false);
    }
    await first.store.close();
    // Opened once more: the journal on disk is now exactly what a rewrite at open writes.
    await (await openStore()).store.close();
    const before = readFileSync(journalPath());
    // A child opens the store with a file size limit 10 bytes short of that: the rewrite's last
    // write is short (Node ignores SIGXFSZ, and a write that crosses the limit writes up to it).
    const child = spawnSync('prlimit', [`--fsize=${before.length - 10}`, '--', process.execPath, '-e', `
      const { StateStore } = require(${JSON.stringify(path.join(__dirname, '../../src/worker/state-store.js'))});
      (async () => {
        const store = new StateStore(process.argv[1]);
        await store.init();
        const contents = await store.readAll();
        await store.open(contents.journal.records.values());
        await store.close();
        console.log('opened');
      })().catch((error) => { console.log(String(error.message)); process.exit(3); });
    `, dir], { encoding: 'utf8' });
    assert.equal(child.status, 3, `the open failed: ${child.stdout}${child.stderr}`);
    assert.match(child.stdout, /rewrite journal .*: ENOSPC/);
    assert.deepEqual(readFileSync(journalPath()), before, 'the journal is the one before');
    const again = await openStore();
    assert.equal(again.contents.journal.damage.count, 0);
    assert.deepEqual([...again.records.keys()].sort(), ids.sort());
    await again.store.close();
  });
});
