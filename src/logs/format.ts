// The log file format (docs/log-format.md), as written by native/log_writer.cc. Pure decoding only.
import { crc32 } from 'node:zlib';

export const FILE_MAGIC = Buffer.from('JWLOG\0\r\n', 'latin1');
export const FILE_HEADER_SIZE = 16;
export const FORMAT_VERSION = 1;
export const RECORD_MAGIC = 0x3152574a; // "JWR1" as little-endian bytes
export const RECORD_HEADER_SIZE = 24;
/** No record payload is larger than a pipe's buffer (1 MiB); anything larger is corruption. */
export const MAX_RECORD_PAYLOAD = 16 << 20;

export type StreamName = 'stdout' | 'stderr' | 'marker';
const streamNames: Record<number, StreamName | undefined> = { 1: 'stdout', 2: 'stderr', 3: 'marker' };

export interface RecordHeader {
  stream: StreamName;
  length: number;
  /** Capture time, nanoseconds since the Unix epoch. */
  timeNs: bigint;
}

/** The file or a record is not what the format says: wrong magic, bad CRC, bad offset. */
export class CorruptLogError extends Error {
  constructor(
    readonly offset: number,
    reason: string,
  ) {
    super(`log corrupt at byte ${offset}: ${reason}`);
    this.name = 'CorruptLogError';
  }
}

export function checkFileHeader(header: Buffer): void {
  if (header.length < FILE_HEADER_SIZE || !header.subarray(0, 8).equals(FILE_MAGIC)) {
    throw new CorruptLogError(0, 'not a jobworker log (bad magic)');
  }
  const version = header.readUInt32LE(12);
  if (version !== FORMAT_VERSION) throw new CorruptLogError(0, `unsupported format version ${version}`);
}

/** Decodes the record header at `buf[at..at+24)`; throws CorruptLogError if it is not one. */
export function decodeRecordHeader(buf: Buffer, at: number, fileOffset: number): RecordHeader {
  if (buf.readUInt32LE(at) !== RECORD_MAGIC) throw new CorruptLogError(fileOffset, 'no record starts here');
  const crc = buf.readUInt32LE(at + 20);
  if (crc32(buf.subarray(at, at + 20)) !== crc) throw new CorruptLogError(fileOffset, 'record header checksum mismatch');
  const stream = streamNames[buf[at + 4]!];
  if (stream === undefined) throw new CorruptLogError(fileOffset, `unknown stream ${buf[at + 4]}`);
  const length = buf.readUInt32LE(at + 8);
  if (length > MAX_RECORD_PAYLOAD) throw new CorruptLogError(fileOffset, `record length ${length} too large`);
  return { stream, length, timeNs: buf.readBigUInt64LE(at + 12) };
}
