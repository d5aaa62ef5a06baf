// Server reflection (so grpcurl and friends work without the .proto). @grpc/reflection needs a
// descriptor-carrying package definition, which proto-loader builds from the shipped proto files;
// the service itself is served with the ts-proto stubs.
import * as path from 'node:path';

import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

const PROTO_ROOT = path.join(__dirname, '..', '..', '..', 'proto');

export function createReflectionService(): ReflectionService {
  const definition = loadSync('jobworker/v1/jobworker.proto', { includeDirs: [PROTO_ROOT] });
  return new ReflectionService(definition);
}
