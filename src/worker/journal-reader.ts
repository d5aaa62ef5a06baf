// Reads the journal at open as a stream of lines, never as one string (a journal may be bigger than
// V8's longest string: a few hundred version 1 lines of 1 MiB specs were), holding one line at a
// time. The last intact entry of each job wins. Damaged lines are copied aside, byte for byte with
// their offsets, to `journal.damaged-<time>` before the journal is rewritten without them.
import { open, type FileHandle } from 'node:fs/promises';

import { errorCode, systemError } from '../errors';
import { JOB_ID_PATTERN } from '../job-id';
import { decodeJournalLine } from './journal-codec';
import type { JobRecord } from './job-record';
import type { ResolvedJobSpec } from './job-spec';
import { CREATE_NEW, openForReading } from './state-files';

/** A line longer than this is damage (a version 1 line is at most ~7 MiB, a version 2 one 64 KiB). */
export const MAX_JOURNAL_LINE_BYTES = 16 << 20;
const READ_SIZE = 1 << 20;
/** Damaged lines whose offsets and job ids are remembered for the report (all are copied aside). */
const DAMAGE_DETAIL_LIMIT = 10_000;
const NEWLINE = 0x0a;
const JOB_IDS = new RegExp(JOB_ID_PATTERN.source.slice(1, -1), 'g');

export interface DamagedLine {
  offset: number;
  length: number;
  /** Job ids that appear in the line (a flipped byte may have hit one: a hint, not a fact). */
  ids: string[];
}

export interface JournalDamage {
  /** Lines that failed their check. */
  count: number;
  /** The first DAMAGE_DETAIL_LIMIT of them. */
  lines: DamagedLine[];
  /** The last line had no newline: torn by a crash (or a full disk) mid-write. */
  tornTail: boolean;
  /** Where they were copied; null if none were, or the copy failed (`copyError`). */
  copiedTo: string | null;
  copyError: string | null;
}

export interface JournalContents {
  /** The last intact entry of each job still recorded. */
  records: Map<string, JobRecord>;
  /** Offset of each record's last intact line: damage after it may have been a newer entry. */
  lastOffsets: Map<string, number>;
  /** Jobs whose removal was recorded (their log, if still there, is garbage). */
  removed: Set<string>;
  damage: JournalDamage;
  bytes: number;
  /** Version 1 lines read (their big specs were written to spec files). */
  migrated: number;
}

export interface ReadJournalOptions {
  /** Where damaged lines go (a new file). */
  damagedCopyPath: string;
  /** Called once per job for a version 1 record whose spec must go to its spec file. */
  saveLegacySpec(id: string, spec: ResolvedJobSpec): Promise<void>;
}

interface Line {
  offset: number;
  /** The line without its newline; only its first MAX_JOURNAL_LINE_BYTES if longer. */
  bytes: Buffer;
  length: number;
  terminated: boolean;
}

async function* journalLines(file: FileHandle): AsyncGenerator<Line> {
  let pieces: Buffer[] = [];
  let kept = 0; // bytes in pieces
  let length = 0; // the line's length so far (more than kept once past the limit)
  let lineStart = 0;
  let position = 0;
  for (;;) {
    // A fresh buffer each time: lines handed out are views of it.
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    const { bytesRead } = await file.read(buffer, 0, READ_SIZE, position);
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    let from = 0;
    while (from < bytesRead) {
      const newline = chunk.indexOf(NEWLINE, from);
      const end = newline === -1 ? bytesRead : newline;
      const room = MAX_JOURNAL_LINE_BYTES - kept;
      if (room > 0 && end > from) {
        pieces.push(chunk.subarray(from, Math.min(end, from + room)));
        kept += Math.min(end - from, room);
      }
      length += end - from;
      if (end === bytesRead) break;
      yield { offset: lineStart, bytes: pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, kept), length, terminated: true };
      lineStart = position + end + 1;
      pieces = [];
      kept = 0;
      length = 0;
      from = end + 1;
    }
    position += bytesRead;
  }
  if (length > 0) yield { offset: lineStart, bytes: Buffer.concat(pieces, kept), length, terminated: false };
}

/** Copies damaged lines aside as they are found: "offset=<n> length=<n>[ torn]\n<the bytes>\n". */
class DamageCopy {
  #file: FileHandle | null = null;
  #failed = false;
  readonly damage: JournalDamage = { count: 0, lines: [], tornTail: false, copiedTo: null, copyError: null };

  constructor(private readonly path: string) {}

  async add(line: Line): Promise<void> {
    this.damage.count++;
    if (!line.terminated) this.damage.tornTail = true;
    if (this.damage.lines.length < DAMAGE_DETAIL_LIMIT) {
      const ids = [...new Set(line.bytes.toString('latin1').match(JOB_IDS) ?? [])];
      this.damage.lines.push({ offset: line.offset, length: line.length, ids });
    }
    if (this.#failed) return;
    try {
      if (this.#file === null) {
        this.#file = await open(this.path, CREATE_NEW, 0o600);
        this.damage.copiedTo = this.path;
      }
      const cut = line.bytes.length < line.length ? ` cut (first ${line.bytes.length} bytes)` : '';
      await this.#file.write(`offset=${line.offset} length=${line.length}${line.terminated ? '' : ' torn'}${cut}\n`);
      await this.#file.write(line.bytes);
      await this.#file.write('\n');
    } catch (error) {
      this.#failed = true;
      this.damage.copyError = systemError('copy damaged journal lines to', this.path, error).message;
    }
  }

  /** Makes the copy durable: the journal is about to be rewritten without these lines. */
  async close(): Promise<void> {
    if (this.#file === null) return;
    try {
      if (!this.#failed) await this.#file.sync();
    } catch (error) {
      this.damage.copyError = systemError('sync', this.path, error).message;
    } finally {
      await this.#file.close();
    }
  }
}

/** Reads the journal (absent: empty), line by line. */
export async function readJournal(journalPath: string, options: ReadJournalOptions): Promise<JournalContents> {
  const contents: JournalContents = { records: new Map(), lastOffsets: new Map(), removed: new Set(), damage: { count: 0, lines: [], tornTail: false, copiedTo: null, copyError: null }, bytes: 0, migrated: 0 };
  let file: FileHandle;
  try {
    file = await openForReading(journalPath, 'read journal');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return contents;
    if (errorCode(error) === undefined) throw error;
    throw systemError('read journal', journalPath, error);
  }
  const damaged = new DamageCopy(options.damagedCopyPath);
  const specsSaved = new Set<string>();
  try {
    for await (const line of journalLines(file)) {
      contents.bytes = line.offset + line.length + (line.terminated ? 1 : 0);
      if (line.length === 0) continue;
      const decoded = line.bytes.length === line.length ? decodeJournalLine(line.bytes) : undefined;
      if (decoded === undefined) {
        await damaged.add(line);
        continue;
      }
      const { entry, legacy, legacySpec } = decoded;
      if (entry.op === 'remove') {
        contents.records.delete(entry.id);
        contents.lastOffsets.delete(entry.id);
        contents.removed.add(entry.id);
        continue;
      }
      const id = entry.record.id;
      if (legacy) contents.migrated++;
      if (legacySpec !== undefined) {
        if (!specsSaved.has(id)) await options.saveLegacySpec(id, legacySpec);
        specsSaved.add(id);
      }
      contents.records.set(id, entry.record);
      contents.lastOffsets.set(id, line.offset);
      contents.removed.delete(id);
    }
  } catch (error) {
    throw errorCode(error) === undefined ? error : systemError('read journal', journalPath, error);
  } finally {
    await file.close();
    await damaged.close();
  }
  contents.damage = damaged.damage;
  return contents;
}
