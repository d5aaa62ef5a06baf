// Journals as tests make and damage them: lines in the previous format (1: the whole spec in every
// line), and the lines of a journal on disk with the job each names, to flip bytes in.
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';

import type { ResolvedJobSpec } from '../../src/worker/job-spec';

/** A spec as format 1 had it: before names and labels. */
export type Version1Spec = Omit<ResolvedJobSpec, 'name' | 'labels'>;

/** A `put` line as the previous version wrote it: format 1, the whole spec inline. */
export function version1Line(jobId: string, spec: Version1Spec, state: 'running' | 'exited', logBytes = 16): string {
  const json = JSON.stringify({
    op: 'put',
    record: {
      version: 1,
      id: jobId,
      spec,
      state,
      outcome: state === 'exited' ? { exitCode: 0, signal: null, oomKilled: false, stoppedBy: null, reason: 'exited with code 0' } : null,
      pid: 7,
      createdAt: '2024-05-01T12:00:00.000Z',
      startedAt: '2024-05-01T12:00:00.001Z',
      finishedAt: state === 'exited' ? '2024-05-01T12:00:01.000Z' : null,
      log: { bytes: logBytes, droppedBytes: 0, truncated: false, writeError: null },
      stats: null,
    },
  });
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

export interface JournalLineAt {
  offset: number;
  length: number;
  /** The job the line names (its record's or its removal's id). */
  id: string | undefined;
}

export function journalLinesOf(stateDir: string): JournalLineAt[] {
  const lines: JournalLineAt[] = [];
  let offset = 0;
  for (const text of readFileSync(path.join(stateDir, 'journal'), 'latin1').split('\n')) {
    if (text !== '') lines.push({ offset, length: text.length, id: /"id":"([0-9a-f-]{36})"/.exec(text)?.[1] });
    offset += text.length + 1;
  }
  return lines;
}

/** Flips one bit at each of these offsets of the journal. */
export function flipJournalBytes(stateDir: string, offsets: readonly number[]): void {
  const journal = path.join(stateDir, 'journal');
  const bytes = readFileSync(journal);
  for (const at of offsets) bytes[at] = bytes[at]! ^ 0x08;
  writeFileSync(journal, bytes);
}

/** Flips a bit in the middle of every journal line naming `id` (only its last one, if `lastOnly`); returns how many lines name it. */
export function damageJournalLinesOf(stateDir: string, id: string, lastOnly = false): number {
  const mine = journalLinesOf(stateDir).filter((line) => line.id === id);
  flipJournalBytes(stateDir, (lastOnly ? mine.slice(-1) : mine).map((line) => line.offset + Math.floor(line.length / 2)));
  return mine.length;
}
