// After a crash a log may end in a torn record (header written, payload incomplete). Find the end of
// the last complete record and cut there, so every reader sees a well-formed log. The same walk
// says what the log itself tells of its job (when its output began and ended, what was dropped),
// from which recovery rebuilds a job whose record was lost.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

import { CorruptLogError, FILE_HEADER_SIZE, RECORD_HEADER_SIZE, decodeRecordHeader } from './format';
import { openLog } from './reader';

/** Markers are small JSON objects; a bigger one is not read (it is not ours). */
const MAX_MARKER_BYTES = 4096;

export interface LogScan {
  /** End of the last complete record: the committed size. */
  validBytes: number;
  fileBytes: number;
  /** Complete records. */
  records: number;
  /** Capture time of the first and the last complete record (nanoseconds since the epoch). */
  firstTimeNs: bigint | null;
  lastTimeNs: bigint | null;
  /** A `truncated` marker: the output reached its cap. */
  truncated: boolean;
  /** Bytes the `dropped` markers count, and the errno of the first. */
  droppedBytes: number;
  writeError: string | null;
}

interface Marker {
  event?: unknown;
  bytes?: unknown;
  error?: unknown;
}

function parseMarker(payload: Buffer): Marker {
  try {
    const value = JSON.parse(payload.toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as Marker) : {};
  } catch {
    return {};
  }
}

/** Walks the record headers (and the markers' payloads, not the output's) from the start. */
export async function scanLog(path: string): Promise<LogScan> {
  const file = await openLog(path);
  try {
    const fileBytes = (await file.stat()).size;
    const scan: LogScan = { validBytes: FILE_HEADER_SIZE, fileBytes, records: 0, firstTimeNs: null, lastTimeNs: null, truncated: false, droppedBytes: 0, writeError: null };
    const header = Buffer.alloc(RECORD_HEADER_SIZE);
    let offset = FILE_HEADER_SIZE;
    while (offset + RECORD_HEADER_SIZE <= fileBytes) {
      const { bytesRead } = await file.read(header, 0, RECORD_HEADER_SIZE, offset);
      if (bytesRead < RECORD_HEADER_SIZE) break;
      let record;
      try {
        record = decodeRecordHeader(header, 0, offset);
      } catch (error) {
        if (error instanceof CorruptLogError) break; // zeros or garbage: the torn tail starts here
        throw error;
      }
      if (offset + RECORD_HEADER_SIZE + record.length > fileBytes) break;
      if (record.stream === 'marker' && record.length <= MAX_MARKER_BYTES) {
        const payload = Buffer.alloc(record.length);
        await file.read(payload, 0, record.length, offset + RECORD_HEADER_SIZE);
        const marker = parseMarker(payload);
        if (marker.event === 'truncated') scan.truncated = true;
        if (marker.event === 'dropped' && typeof marker.bytes === 'number') {
          scan.droppedBytes += marker.bytes;
          if (scan.writeError === null && typeof marker.error === 'string') scan.writeError = marker.error;
        }
      }
      scan.records++;
      scan.firstTimeNs ??= record.timeNs;
      scan.lastTimeNs = record.timeNs;
      offset += RECORD_HEADER_SIZE + record.length;
      scan.validBytes = offset;
    }
    return scan;
  } finally {
    await file.close();
  }
}

/** Truncates a torn tail; returns the scan. Never through a link (it would cut another file). */
export async function repairLog(path: string): Promise<LogScan> {
  const scan = await scanLog(path);
  if (scan.validBytes < scan.fileBytes) {
    const file = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    try {
      await file.truncate(scan.validBytes);
    } finally {
      await file.close();
    }
  }
  return scan;
}
