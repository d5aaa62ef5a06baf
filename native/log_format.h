// The on-disk log format shared by the native writer and the TypeScript reader
// (src/logs/format.ts). Described in docs/log-format.md: keep the three in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace jw {

// File header: 8 magic bytes, then u32 header size and u32 format version (little endian).
constexpr char kFileMagic[8] = {'J', 'W', 'L', 'O', 'G', '\0', '\r', '\n'};
constexpr uint32_t kFileHeaderSize = 16;
constexpr uint32_t kFormatVersion = 1;

// Record header, 24 bytes, little endian:
//   0  u32 magic 'J''W''R''1'
//   4  u8  stream (kStdout, kStderr, kMarker)
//   5  u8  flags (0)
//   6  u16 reserved (0)
//   8  u32 payload length in bytes
//  12  u64 capture time, nanoseconds since the Unix epoch (CLOCK_REALTIME)
//  20  u32 CRC-32 (IEEE, as zlib) of bytes 0..19
// followed by the payload. The next record starts right after the payload.
constexpr uint32_t kRecordMagic = 0x3152574a;  // "JWR1" read as little-endian bytes
constexpr uint32_t kRecordHeaderSize = 24;
constexpr uint8_t kStdout = 1;
constexpr uint8_t kStderr = 2;
constexpr uint8_t kMarker = 3;  // payload is one JSON object written by jobworker itself

// The most output one record holds. A bigger read from a pipe becomes several records, so that a
// stream of whole records (gRPC StreamLogs: one chunk, whole records, resumable at its end) fits
// its messages. Readers accept bigger records from older logs (MAX_RECORD_PAYLOAD in
// src/logs/format.ts).
constexpr size_t kMaxRecordPayload = 256 * 1024;

uint32_t crc32(const uint8_t* data, size_t len);

inline void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

inline void encode_file_header(uint8_t out[kFileHeaderSize]) {
  std::memcpy(out, kFileMagic, 8);
  put_u32(out + 8, kFileHeaderSize);
  put_u32(out + 12, kFormatVersion);
}

inline void encode_record_header(uint8_t out[kRecordHeaderSize], uint8_t stream, uint32_t length,
                                 uint64_t time_ns) {
  put_u32(out, kRecordMagic);
  out[4] = stream;
  out[5] = 0;
  out[6] = 0;
  out[7] = 0;
  put_u32(out + 8, length);
  put_u64(out + 12, time_ns);
  put_u32(out + 20, crc32(out, 20));
}

}  // namespace jw
