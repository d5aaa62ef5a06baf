// The protobuf descriptors of every service the server exposes (jobworker.v1, grpc.health.v1,
// grpc.reflection v1 and v1alpha, and what they import), exactly as `buf build` wrote them at
// generation time (`npm run gen` -> src/gen/descriptors.binpb, checked by `npm run gen:check`).
// Reflection serves each file's bytes unchanged; the request decoder uses them to name the field a
// number was out of range in.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { create, createFileRegistry, fromBinary, type DescFile, type DescMessage, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** From dist/src/server/ to the committed file (shipped with the package: package.json "files"). */
export const DESCRIPTOR_SET_PATH = path.join(__dirname, '..', '..', '..', 'src', 'gen', 'descriptors.binpb');

/** FileDescriptorSet.file is field 1. */
const FILE_FIELD = 1;

export interface ServedDescriptors {
  registry: FileRegistry;
  /** Each file's FileDescriptorProto encoding as generated, by file name ("jobworker/v1/jobworker.proto"). */
  encodedFiles: ReadonlyMap<string, Uint8Array>;
}

/** Splits a FileDescriptorSet into its files' encodings, byte for byte, and indexes them. */
export function parseDescriptorSet(set: Uint8Array): ServedDescriptors {
  const encoded: Uint8Array[] = [];
  const reader = new BinaryReader(set);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === FILE_FIELD && wireType === WireType.LengthDelimited) encoded.push(reader.bytes());
    else reader.skip(wireType, field);
  }
  const protos = encoded.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: protos }));
  return { registry, encodedFiles: new Map(protos.map((proto, i) => [proto.name, encoded[i]!])) };
}

let loaded: ServedDescriptors | undefined;

/** The generated descriptors (read once). */
export function servedDescriptors(): ServedDescriptors {
  loaded ??= parseDescriptorSet(readFileSync(DESCRIPTOR_SET_PATH));
  return loaded;
}

/** The request message of a method path ("/jobworker.v1.JobService/StartJob"), if it is described. */
export function requestMessageOf(descriptors: ServedDescriptors, methodPath: string): DescMessage | undefined {
  const [, service, method] = methodPath.split('/');
  return descriptors.registry.getService(service ?? '')?.methods.find((m) => m.name === method)?.input;
}

/** The file and every file it imports, directly or not, each once, the file first. */
export function withDependencies(file: DescFile): DescFile[] {
  const seen = new Set<DescFile>();
  const visit = (f: DescFile): void => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const dependency of f.dependencies) visit(dependency);
  };
  visit(file);
  return [...seen];
}
