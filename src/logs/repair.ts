// After a crash a log may end in a torn record (header written, payload incomplete). Find the end of
// the last complete record and cut there, so every reader sees a well-formed log.
import { open } from 'node:fs/promises';

import { CorruptLogError, FILE_HEADER_SIZE, RECORD_HEADER_SIZE, checkFileHeader, decodeRecordHeader } from './format';

export interface LogScan {
  /** End of the last complete record: the committed size. */
  validBytes: number;
  fileBytes: number;
}

/** Walks the record headers (not the payloads) from the start. */
export async function scanLog(path: string): Promise<LogScan> {
  const file = await open(path, 'r');
  try {
    const fileBytes = (await file.stat()).size;
    const header = Buffer.alloc(RECORD_HEADER_SIZE);
    const first = await file.read(header, 0, FILE_HEADER_SIZE, 0);
    checkFileHeader(header.subarray(0, first.bytesRead));
    let offset = FILE_HEADER_SIZE;
    while (offset + RECORD_HEADER_SIZE <= fileBytes) {
      const { bytesRead } = await file.read(header, 0, RECORD_HEADER_SIZE, offset);
      if (bytesRead < RECORD_HEADER_SIZE) break;
      let length: number;
      try {
        length = decodeRecordHeader(header, 0, offset).length;
      } catch (error) {
        if (error instanceof CorruptLogError) break; // zeros or garbage: the torn tail starts here
        throw error;
      }
      if (offset + RECORD_HEADER_SIZE + length > fileBytes) break;
      offset += RECORD_HEADER_SIZE + length;
    }
    return { validBytes: offset, fileBytes };
  } finally {
    await file.close();
  }
}

/** Truncates a torn tail; returns the committed size. */
export async function repairLog(path: string): Promise<LogScan> {
  const scan = await scanLog(path);
  if (scan.validBytes < scan.fileBytes) {
    const file = await open(path, 'r+');
    try {
      await file.truncate(scan.validBytes);
    } finally {
      await file.close();
    }
  }
  return scan;
}
