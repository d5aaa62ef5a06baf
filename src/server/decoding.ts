// grpc-js answers INTERNAL when a request cannot be deserialized. A malformed request is the
// client's error, so the service's deserializers are wrapped: a message that does not decode becomes
// a marker that the handler turns into INVALID_ARGUMENT.
import type { ServiceDefinition } from '@grpc/grpc-js';

import { ValidationError } from '../errors';

const UNDECODABLE = Symbol('undecodable request');

interface Undecodable {
  [UNDECODABLE]: string;
}

/** The service definition with every request deserializer made total. */
export function withSafeDecoding<T extends ServiceDefinition>(service: T): T {
  const safe: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    safe[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return { [UNDECODABLE]: error instanceof Error ? error.message : String(error) } satisfies Undecodable;
        }
      },
    };
  }
  return safe as T;
}

/** Throws INVALID_ARGUMENT for a request that did not decode; returns it otherwise. */
export function decoded<T>(request: T): T {
  if (typeof request === 'object' && request !== null && UNDECODABLE in request) {
    throw new ValidationError('request', `not a valid protobuf message (${(request as Undecodable)[UNDECODABLE]})`);
  }
  return request;
}
