// The standard gRPC health check (grpc.health.v1.Health/Check), the one call any authenticated
// client may make: a cheap way to connect, and to learn why not, before real work. Its two messages
// are encoded with the protobuf wire library the generated stubs use (no .proto loaded at run time).
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
const STATUSES: readonly ServingStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** HealthCheckRequest { string service = 1; } — empty asks about the server as a whole. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const writer = new BinaryWriter();
  if (service !== '') writer.uint32((1 << 3) | WireType.LengthDelimited).string(service);
  return Buffer.from(writer.finish());
}

/** HealthCheckResponse { ServingStatus status = 1; } */
export function decodeHealthCheckResponse(bytes: Uint8Array): ServingStatus {
  const reader = new BinaryReader(bytes);
  let status = 0;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) status = reader.int32();
    else reader.skip(wireType, field);
  }
  return STATUSES[status] ?? 'UNKNOWN';
}
