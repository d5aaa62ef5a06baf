// Where to start reading so that the last N lines of the selected streams come out (`tail -n N`).
// One forward pass over the record headers remembers the last records' positions (a bounded ring);
// a backward pass over their payloads counts newlines.
import { open } from 'node:fs/promises';

import { RECORD_HEADER_SIZE, type StreamName } from './format';
import { openLog, readRecords } from './reader';

export interface TailStart {
  /** Offset of the record holding the first line to deliver. */
  from: number;
  /** Bytes of that record's payload before the first line. */
  skip: number;
}

/** Records remembered by the forward pass; tails needing more records start at the oldest one. */
const RING = 1 << 18;
const NEWLINE = 0x0a;

export async function findTailStart(
  path: string,
  until: number,
  lines: number,
  streams: ReadonlySet<StreamName>,
): Promise<TailStart> {
  const offsets = new Float64Array(RING);
  const lengths = new Uint32Array(RING);
  let count = 0;
  const log = await openLog(path);
  try {
    for await (const record of readRecords(log, { until })) {
      if (!streams.has(record.stream)) continue;
      offsets[count % RING] = record.offset;
      lengths[count % RING] = record.data.length;
      count++;
    }
  } finally {
    await log.close();
  }
  const oldest = Math.max(0, count - RING);
  if (count === 0 || lines <= 0) return { from: until, skip: 0 };

  const file = await open(path, 'r');
  try {
    let newlines = 0;
    let last = true; // a newline ending the whole output does not begin another line
    for (let i = count - 1; i >= oldest; i--) {
      const length = lengths[i % RING]!;
      const data = Buffer.allocUnsafe(length);
      await file.read(data, 0, length, offsets[i % RING]! + RECORD_HEADER_SIZE);
      for (let p = length - 1; p >= 0; p--) {
        if (data[p] !== NEWLINE) {
          last = false;
          continue;
        }
        if (last) {
          last = false;
          continue;
        }
        if (++newlines === lines) {
          // The line starts right after this newline (possibly in the next record).
          if (p + 1 < length) return { from: offsets[i % RING]!, skip: p + 1 };
          return i + 1 < count ? { from: offsets[(i + 1) % RING]!, skip: 0 } : { from: until, skip: 0 };
        }
      }
    }
    return { from: offsets[oldest % RING]!, skip: 0 };
  } finally {
    await file.close();
  }
}
