// Reflection answers from the generated descriptors, byte for byte; the request decoder names the
// field of a 64-bit number it cannot hold.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { create, createFileRegistry, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

import type { ServerReflectionRequest } from '../../src/gen/grpc/reflection/v1/reflection';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { explainUndecodable } from '../../src/server/decoding';
import { DESCRIPTOR_SET_PATH, requestMessageOf, servedDescriptors } from '../../src/server/descriptors';
import { answerReflection } from '../../src/server/reflection';

const descriptors = servedDescriptors();

function ask(messageRequest: ServerReflectionRequest['messageRequest']) {
  return answerReflection(descriptors, { host: 'h', messageRequest }).messageResponse;
}

function filesFor(messageRequest: ServerReflectionRequest['messageRequest']): string[] {
  const response = ask(messageRequest);
  assert.equal(response?.$case, 'fileDescriptorResponse', JSON.stringify(response));
  return response.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

describe('server reflection', () => {
  it('lists every service the server exposes', () => {
    const response = ask({ $case: 'listServices', value: '*' });
    assert.equal(response?.$case, 'listServicesResponse');
    assert.deepEqual(response.value.service.map((s) => s.name).sort(), [
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'jobworker.v1.JobService',
    ]);
  });

  it('serves each file exactly as generated, under its real name, with its imports', () => {
    const response = ask({ $case: 'fileByFilename', value: 'jobworker/v1/jobworker.proto' });
    assert.equal(response?.$case, 'fileDescriptorResponse');
    const [file, ...imports] = response.value.fileDescriptorProto;
    const set = fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET_PATH));
    const generated = set.file.find((f) => f.name === 'jobworker/v1/jobworker.proto')!;
    assert.deepEqual(Buffer.from(file!), Buffer.from(toBinary(FileDescriptorProtoSchema, generated)));
    const proto = fromBinary(FileDescriptorProtoSchema, file!);
    assert.deepEqual(proto.dependency, ['google/protobuf/timestamp.proto']);
    assert.deepEqual(imports.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name), ['google/protobuf/timestamp.proto']);
    // proto names, not camelCase; map entries as protoc makes them
    const limits = proto.messageType.find((m) => m.name === 'Limits')!;
    assert.ok(limits.field.some((f) => f.name === 'memory_bytes' && f.jsonName === 'memoryBytes' && f.proto3Optional));
    const start = proto.messageType.find((m) => m.name === 'StartJobRequest')!;
    assert.equal(start.nestedType.find((m) => m.name === 'EnvEntry')?.options?.mapEntry, true);
    // and a standard pool builds them
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [proto, ...imports.map((b) => fromBinary(FileDescriptorProtoSchema, b))].reverse() }));
    assert.equal(registry.getService('jobworker.v1.JobService')?.methods.length, 8);
  });

  it('finds the file of a service, method, message, nested type, field, oneof, enum value and package', () => {
    const jobworker = ['jobworker/v1/jobworker.proto', 'google/protobuf/timestamp.proto'];
    for (const symbol of [
      'jobworker.v1.JobService',
      'jobworker.v1.JobService.StartJob',
      'jobworker.v1.StartJobRequest',
      'jobworker.v1.StartJobRequest.EnvEntry',
      'jobworker.v1.Limits.memory_bytes',
      'jobworker.v1.Limits._cpu',
      'jobworker.v1.JOB_STATE_RUNNING',
      'jobworker.v1',
    ]) {
      assert.deepEqual(filesFor({ $case: 'fileContainingSymbol', value: symbol }), jobworker, symbol);
    }
    assert.deepEqual(filesFor({ $case: 'fileContainingSymbol', value: 'grpc.health.v1.Health' }), ['grpc/health/v1/health.proto']);
    assert.deepEqual(filesFor({ $case: 'fileContainingSymbol', value: 'grpc.health.v1.HealthCheckResponse.SERVING' }), ['grpc/health/v1/health.proto']);
    assert.deepEqual(filesFor({ $case: 'fileContainingSymbol', value: 'grpc.reflection.v1alpha.ServerReflection' }), ['grpc/reflection/v1alpha/reflection.proto']);
  });

  it('answers NOT_FOUND for unknown names, and no extensions for a known type', () => {
    for (const request of [
      { $case: 'fileByFilename', value: 'jobworker.proto' },
      { $case: 'fileContainingSymbol', value: 'jobworker.v1.Nope' },
      { $case: 'fileContainingSymbol', value: 'jobworker.v1.Limits.memoryBytes' },
      { $case: 'fileContainingExtension', value: { containingType: 'jobworker.v1.Job', extensionNumber: 100 } },
      { $case: 'allExtensionNumbersOfType', value: 'jobworker.v1.Nope' },
    ] as const) {
      const response = ask(request);
      assert.equal(response?.$case, 'errorResponse', JSON.stringify(request));
      assert.equal(response.value.errorCode, 5);
    }
    assert.deepEqual(ask({ $case: 'allExtensionNumbersOfType', value: 'jobworker.v1.Job' }), {
      $case: 'allExtensionNumbersResponse',
      value: { baseTypeName: 'jobworker.v1.Job', extensionNumber: [] },
    });
    const echoed = answerReflection(descriptors, { host: 'example:1', messageRequest: { $case: 'listServices', value: '' } });
    assert.equal(echoed.validHost, 'example:1');
    assert.deepEqual(echoed.originalRequest, { host: 'example:1', messageRequest: { $case: 'listServices', value: '' } });
  });
});

describe('64-bit numbers a request cannot carry', () => {
  const startJob = requestMessageOf(descriptors, '/jobworker.v1.JobService/StartJob')!;
  const streamLogs = requestMessageOf(descriptors, '/jobworker.v1.JobService/StreamLogs')!;

  function failing(schema: typeof startJob, init: Record<string, unknown>, decode: (bytes: Uint8Array) => unknown) {
    const bytes = toBinary(schema, create(schema, init));
    let error: unknown;
    try {
      decode(bytes);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof Error, 'the generated decoder refuses it');
    return explainUndecodable(schema, bytes, error);
  }

  it('names the field, its value and the largest number accepted', () => {
    const max = 2n ** 64n - 1n;
    assert.deepEqual(failing(startJob, { command: 'x', limits: { memoryBytes: max } }, (b) => pb.StartJobRequest.decode(b)), {
      field: 'limits.memory_bytes',
      reason: '18446744073709551615 is above 9007199254740991 (2^53−1), the largest number this server accepts',
    });
    const io = failing(startJob, { command: 'x', limits: { io: [{ device: '/', readIops: 5n }, { device: '/', writeIops: 2n ** 53n }] } }, (b) => pb.StartJobRequest.decode(b));
    assert.equal(io.field, 'limits.io[1].write_iops');
    assert.equal(failing(streamLogs, { jobId: 'x', fromOffset: 2n ** 63n }, (b) => pb.StreamLogsRequest.decode(b)).field, 'from_offset');
    const since = failing(streamLogs, { jobId: 'x', sinceUnixMicros: -(2n ** 60n) }, (b) => pb.StreamLogsRequest.decode(b));
    assert.equal(since.field, 'since_unix_micros');
    assert.match(since.reason, /below −9007199254740991, the smallest/);
  });

  it('2^53−1 itself decodes', () => {
    const bytes = toBinary(startJob, create(startJob, { command: 'x', limits: { memoryBytes: BigInt(Number.MAX_SAFE_INTEGER) } }));
    assert.equal(pb.StartJobRequest.decode(bytes).limits?.memoryBytes, Number.MAX_SAFE_INTEGER);
  });

  it('a message that is not protobuf at all is still just "request"', () => {
    assert.equal(explainUndecodable(startJob, Buffer.from([0xff, 0xff, 0xff]), new Error('bad')).field, 'request');
  });
});
