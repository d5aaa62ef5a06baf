// Log files made by hand, in the format of docs/log-format.md (as native/log_writer.cc writes it).
import { crc32 } from 'node:zlib';

import { FILE_MAGIC, RECORD_MAGIC } from '../../src/logs/format';

export function fileHeader(): Buffer {
  const h = Buffer.alloc(16);
  FILE_MAGIC.copy(h);
  h.writeUInt32LE(16, 8);
  h.writeUInt32LE(1, 12);
  return h;
}

/** One record: stream 1 stdout, 2 stderr, 3 marker. */
export function record(stream: 1 | 2 | 3, data: string | Buffer, timeNs = 1n): Buffer {
  const payload = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const h = Buffer.alloc(24);
  h.writeUInt32LE(RECORD_MAGIC, 0);
  h[4] = stream;
  h.writeUInt32LE(payload.length, 8);
  h.writeBigUInt64LE(timeNs, 12);
  h.writeUInt32LE(crc32(h.subarray(0, 20)), 20);
  return Buffer.concat([h, payload]);
}
