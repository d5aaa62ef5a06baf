// One journal line: "<crc32 of the JSON, 8 hex digits> <JSON>\n". A line cut short by a crash, or
// damaged, fails its check and is refused as a whole, so a record is either as it was or as it
// became. Lines of format version 1 (each carrying the job's whole spec) are still read: they are
// turned into version 2 records here, their big specs handed back to be written to spec files.
import { crc32 } from 'node:zlib';

import { isJobId } from '../job-id';
import { recordSpec, type JobRecord } from './job-record';
import type { ResolvedJobSpec } from './job-spec';
import { FINAL_STATES, type JobState } from './job-state';

export type JournalEntry = { op: 'put'; record: JobRecord } | { op: 'remove'; id: string };

/** A decoded line; `legacySpec` is the whole spec of a version 1 record that must go to its spec file. */
export interface DecodedEntry {
  entry: JournalEntry;
  /** A version 1 record, converted. */
  legacy?: true;
  legacySpec?: ResolvedJobSpec;
}

const STATES: readonly JobState[] = ['starting', 'running', ...FINAL_STATES];
const SPACE = 0x20;

export function encodeJournalLine(entry: JournalEntry): string {
  const json = JSON.stringify(entry);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** A spec file's content: the same framing, so damage is detected the same way. */
export function encodeChecked(value: unknown): string {
  const json = JSON.stringify(value);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** The JSON value of a checked line (without its newline), or undefined if it fails its check. */
export function decodeChecked(line: Buffer): unknown {
  if (line.length < 10 || line[8] !== SPACE) return undefined;
  const hex = line.toString('latin1', 0, 8);
  const json = line.subarray(9);
  if (!/^[0-9a-f]{8}$/.test(hex) || Number.parseInt(hex, 16) !== crc32(json)) return undefined;
  try {
    return JSON.parse(json.toString('utf8')) as unknown;
  } catch {
    return undefined; // a matching CRC over invalid JSON cannot come from us
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Enough of a record's shape that nothing later trips on it (a matching CRC says we wrote it). */
function hasRecordShape(record: Record<string, unknown>): boolean {
  const spec = record.spec;
  const log = record.log;
  return (
    typeof record.id === 'string' &&
    isJobId(record.id) &&
    STATES.includes(record.state as JobState) &&
    typeof record.createdAt === 'string' &&
    isObject(log) &&
    typeof log.bytes === 'number' &&
    isObject(spec) &&
    typeof spec.command === 'string' &&
    Array.isArray(spec.args) &&
    typeof spec.owner === 'string'
  );
}

function isVersion2Record(record: unknown): record is JobRecord {
  return isObject(record) && record.version === 2 && typeof record.specFile === 'boolean' && hasRecordShape(record) && typeof (record.spec as Record<string, unknown>).argsOmitted === 'number';
}

/** A version 1 record (the whole spec inline) as a version 2 one. */
function fromVersion1(record: Record<string, unknown>): DecodedEntry {
  // Format 1 predates names and labels.
  const spec: ResolvedJobSpec = { ...(record.spec as Omit<ResolvedJobSpec, 'name' | 'labels'>), name: null, labels: {} };
  const recorded = recordSpec(spec);
  const upgraded = { ...record, version: 2, ...recorded, rebuilt: null } as JobRecord;
  return { entry: { op: 'put', record: upgraded }, legacy: true, ...(recorded.specFile ? { legacySpec: spec } : {}) };
}

/** The entry of one line (without its newline), or undefined if the line is torn or damaged. */
export function decodeJournalLine(line: Buffer): DecodedEntry | undefined {
  const entry = decodeChecked(line);
  if (!isObject(entry)) return undefined;
  if (entry.op === 'remove') return typeof entry.id === 'string' && isJobId(entry.id) ? { entry: { op: 'remove', id: entry.id } } : undefined;
  if (entry.op !== 'put') return undefined;
  const record = entry.record;
  if (isVersion2Record(record)) return { entry: { op: 'put', record } };
  if (isObject(record) && record.version === 1 && hasRecordShape(record) && isObject((record.spec as Record<string, unknown>).env)) return fromVersion1(record);
  return undefined;
}
