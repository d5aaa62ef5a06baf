// grpc-js answers INTERNAL when a request cannot be deserialized. A malformed request is the
// client's error, so the service's deserializers are wrapped: a message that does not decode becomes
// a marker that the handler turns into INVALID_ARGUMENT, naming the field when one is to blame.
//
// The generated (ts-proto) messages hold 64-bit integers as JavaScript numbers, so a value beyond
// 2^53−1 cannot be represented and the generated decoder throws without saying where. The request is
// then decoded again with the generated descriptors (@bufbuild/protobuf, 64-bit integers as bigint)
// to find the field, so the answer reads `limits.memory_bytes: 18446744073709551615 is above …`.
import { isAscii } from 'node:buffer';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { fromBinary, ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';

import { ValidationError } from '../errors';
import { requestMessageOf, servedDescriptors } from './descriptors';

/** The largest integer a request field may carry (Number.MAX_SAFE_INTEGER); docs/api.md lists each field's real range. */
export const MAX_REQUEST_INTEGER = Number.MAX_SAFE_INTEGER;

const UNDECODABLE = Symbol('undecodable request');

interface Undecodable {
  [UNDECODABLE]: { field: string; reason: string };
}

const INT64_TYPES: ReadonlySet<ScalarType> = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

function outOfRange(value: unknown): boolean {
  return typeof value === 'bigint' && (value > BigInt(MAX_REQUEST_INTEGER) || value < -BigInt(MAX_REQUEST_INTEGER));
}

/** The first 64-bit integer field (proto path) holding a number beyond ±(2^53−1), if any. */
function findOutOfRange(message: ReflectMessage, path: string): { field: string; value: bigint } | undefined {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const at = `${path}${path === '' ? '' : '.'}${field.name}`;
    const found = findInField(field, message, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

function findInField(field: DescField, message: ReflectMessage, at: string): { field: string; value: bigint } | undefined {
  switch (field.fieldKind) {
    case 'scalar': {
      const value = message.get(field);
      return INT64_TYPES.has(field.scalar) && outOfRange(value) ? { field: at, value: value as bigint } : undefined;
    }
    case 'message':
      return findOutOfRange(message.get(field), at);
    case 'list': {
      let i = 0;
      for (const item of message.get(field)) {
        if (field.listKind === 'message') {
          const found = findOutOfRange(item as ReflectMessage, `${at}[${i}]`);
          if (found !== undefined) return found;
        } else if (field.listKind === 'scalar' && INT64_TYPES.has(field.scalar) && outOfRange(item)) {
          return { field: `${at}[${i}]`, value: item as bigint };
        }
        i++;
      }
      return undefined;
    }
    case 'map':
      for (const [key, item] of message.get(field)) {
        if (field.mapKind === 'message') {
          const found = findOutOfRange(item as ReflectMessage, `${at}.${String(key)}`);
          if (found !== undefined) return found;
        } else if (field.mapKind === 'scalar' && INT64_TYPES.has(field.scalar) && outOfRange(item)) {
          return { field: `${at}.${String(key)}`, value: item as bigint };
        }
      }
      return undefined;
    default:
      return undefined;
  }
}

/**
 * The first map field (proto path) with a key "__proto__". The generated decoder fills maps as plain
 * objects, where that key sets the prototype instead (a string is ignored): the entry would vanish
 * without a word. The descriptors' decoder keeps it, so it is looked for there.
 */
function findProtoKey(message: ReflectMessage, path: string): string | undefined {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const at = `${path}${path === '' ? '' : '.'}${field.name}`;
    if (field.fieldKind === 'map') {
      const map = message.get(field);
      if (field.mapKey === ScalarType.STRING && map.has('__proto__')) return at;
      if (field.mapKind === 'message') {
        for (const [key, item] of map) {
          const found = findProtoKey(item as ReflectMessage, `${at}.${String(key)}`);
          if (found !== undefined) return found;
        }
      }
    } else if (field.fieldKind === 'message') {
      const found = findProtoKey(message.get(field), at);
      if (found !== undefined) return found;
    } else if (field.fieldKind === 'list' && field.listKind === 'message') {
      let i = 0;
      for (const item of message.get(field)) {
        const found = findProtoKey(item as ReflectMessage, `${at}[${i++}]`);
        if (found !== undefined) return found;
      }
    }
  }
  return undefined;
}

/** A map key "__proto__" in a request that decoded (the caller searches the bytes first: it is rare). */
export function protoKeyProblem(schema: DescMessage | undefined, bytes: Uint8Array): { field: string; reason: string } | undefined {
  if (schema === undefined) return undefined;
  let field: string | undefined;
  try {
    field = findProtoKey(reflect(schema, fromBinary(schema, bytes)), '');
  } catch {
    return undefined;
  }
  return field === undefined ? undefined : { field, reason: 'has a key named "__proto__", which this server cannot keep (it would be dropped without a word); rename it' };
}

const REPLACEMENT = '\uFFFD';

/**
 * The first string (proto path) of a decoded request holding U+FFFD, the character the generated
 * decoder puts in place of bytes that are not UTF-8. Walks the plain object the generated decoder
 * made, guided by the schema (map keys are kept as they are, field names given as in the .proto).
 */
function findReplacement(schema: DescMessage, message: unknown, path: string): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const value = (name: string): unknown => (message as Record<string, unknown>)[name];
  for (const field of schema.fields) {
    const at = `${path}${path === '' ? '' : '.'}${field.name}`;
    const own = value(field.localName);
    if (own === undefined || own === null) continue;
    if (field.fieldKind === 'scalar') {
      if (typeof own === 'string' && own.includes(REPLACEMENT)) return at;
    } else if (field.fieldKind === 'message') {
      const found = findReplacement(field.message, own, at);
      if (found !== undefined) return found;
    } else if (field.fieldKind === 'list' && Array.isArray(own)) {
      for (let i = 0; i < own.length; i++) {
        const item: unknown = own[i];
        if (field.listKind === 'message') {
          const found = findReplacement(field.message, item, `${at}[${i}]`);
          if (found !== undefined) return found;
        } else if (typeof item === 'string' && item.includes(REPLACEMENT)) return `${at}[${i}]`;
      }
    } else if (field.fieldKind === 'map') {
      for (const [key, item] of Object.entries(own as Record<string, unknown>)) {
        if (key.includes(REPLACEMENT)) return `${at} (a key)`;
        if (field.mapKind === 'message') {
          const found = findReplacement(field.message, item, `${at}.${key}`);
          if (found !== undefined) return found;
        } else if (typeof item === 'string' && item.includes(REPLACEMENT)) return `${at}.${key}`;
      }
    }
  }
  return undefined;
}

/**
 * A string field of a decoded request that was not valid UTF-8. The generated decoder replaces such
 * bytes with U+FFFD without a word, so a job would run with other bytes than the client sent; proto3
 * strings must be UTF-8 (other gRPC servers refuse them). Only a request with a U+FFFD somewhere is
 * decoded again, strictly, to tell a replaced byte from a U+FFFD the client sent.
 */
export function invalidUtf8Problem(schema: DescMessage | undefined, request: unknown, bytes: Uint8Array): { field: string; reason: string } | undefined {
  if (schema === undefined) return undefined;
  const field = findReplacement(schema, request, '');
  if (field === undefined) return undefined;
  try {
    fromBinary(schema, bytes);
    return undefined;
  } catch {
    return { field, reason: 'is not valid UTF-8 (protobuf strings must be; the bytes cannot be kept as sent)' };
  }
}

/** Why a request did not decode, naming the field when one holds a number out of range. */
export function explainUndecodable(schema: DescMessage | undefined, bytes: Uint8Array, error: unknown): { field: string; reason: string } {
  const generic = { field: 'request', reason: `not a valid protobuf message (${error instanceof Error ? error.message : String(error)})` };
  if (schema === undefined) return generic;
  let message: ReflectMessage;
  try {
    message = reflect(schema, fromBinary(schema, bytes));
  } catch {
    return generic;
  }
  const found = findOutOfRange(message, '');
  if (found === undefined) return generic;
  const bound = found.value < 0n ? `below −${MAX_REQUEST_INTEGER}, the smallest` : `above ${MAX_REQUEST_INTEGER} (2^53−1), the largest`;
  return { field: found.field, reason: `${found.value} is ${bound} number this server accepts` };
}

/** The service definition with every request deserializer made total. */
export function withSafeDecoding<T extends ServiceDefinition>(service: T): T {
  const safe: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    safe[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        let request: unknown;
        try {
          request = method.requestDeserialize(bytes);
        } catch (error) {
          const schema = requestMessageOf(servedDescriptors(), method.path);
          return { [UNDECODABLE]: explainUndecodable(schema, bytes, error) } satisfies Undecodable;
        }
        const lost =
          (bytes.indexOf('__proto__') < 0 ? undefined : protoKeyProblem(requestMessageOf(servedDescriptors(), method.path), bytes)) ??
          (isAscii(bytes) ? undefined : invalidUtf8Problem(requestMessageOf(servedDescriptors(), method.path), request, bytes));
        return lost === undefined ? request : ({ [UNDECODABLE]: lost } satisfies Undecodable);
      },
    };
  }
  return safe as T;
}

/** Throws INVALID_ARGUMENT for a request that did not decode; returns it otherwise. */
export function decoded<T>(request: T): T {
  if (typeof request === 'object' && request !== null && UNDECODABLE in request) {
    const { field, reason } = (request as Undecodable)[UNDECODABLE];
    throw new ValidationError(field, reason);
  }
  return request;
}
