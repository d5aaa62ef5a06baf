// Server reflection (grpc.reflection.v1 and v1alpha), so generic tools work without our .proto files.
// It serves the generated descriptors (./descriptors.ts) byte for byte: the real file names,
// snake_case field names, map entries and imports exactly as protoc/buf produce them, which
// standard descriptor pools accept. (@grpc/reflection rebuilds descriptors from proto-loader's
// definitions, which lose all of that.)
import { status as GrpcStatus, type Server, type ServerDuplexStream } from '@grpc/grpc-js';

import type { DescFile } from '@bufbuild/protobuf';

import * as v1 from '../gen/grpc/reflection/v1/reflection';
import * as v1alpha from '../gen/grpc/reflection/v1alpha/reflection';
import { decoded, withSafeDecoding } from './decoding';
import { withDependencies, type ServedDescriptors } from './descriptors';
import { serviceError, statusOf } from './status';

// v1alpha's messages are v1's under another package name: one implementation answers both.
type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;

function notFound(message: string): Response['messageResponse'] {
  return { $case: 'errorResponse', value: { errorCode: GrpcStatus.NOT_FOUND, errorMessage: message } };
}

function files(found: DescFile | undefined, what: string, descriptors: ServedDescriptors): Response['messageResponse'] {
  if (found === undefined) return notFound(`${what} not found`);
  // The file, then every file it imports (a client needs them all to build the file's descriptors).
  const fileDescriptorProto = withDependencies(found).map((file) => Buffer.from(descriptors.encodedFiles.get(file.proto.name)!));
  return { $case: 'fileDescriptorResponse', value: { fileDescriptorProto } };
}

/** The file that defines a symbol: a package, type (map entries too), service, method, field, oneof or enum value. */
function fileDefining(descriptors: ServedDescriptors, symbol: string): DescFile | undefined {
  const { registry } = descriptors;
  const type = registry.get(symbol);
  if (type !== undefined) return type.file;
  const dot = symbol.lastIndexOf('.');
  const parent = registry.get(symbol.slice(0, Math.max(dot, 0)));
  const member = symbol.slice(dot + 1);
  if (parent?.kind === 'service' && parent.methods.some((m) => m.name === member)) return parent.file;
  if (parent?.kind === 'message') {
    // As the file declares them: map entries and synthetic oneofs (`_cpu`) included.
    const { field, oneofDecl, nestedType } = parent.proto;
    if ([...field, ...oneofDecl, ...nestedType].some((d) => d.name === member)) return parent.file;
  }
  for (const desc of registry) {
    // Enum values are scoped like their enum's siblings: jobworker.v1.JOB_STATE_RUNNING.
    if (desc.kind === 'enum' && desc.values.some((v) => `${desc.typeName.slice(0, desc.typeName.length - desc.name.length)}${v.name}` === symbol)) return desc.file;
  }
  return [...registry.files].find((file) => file.proto.package === symbol);
}

export function answerReflection(descriptors: ServedDescriptors, request: Request): Response {
  const { registry } = descriptors;
  let messageResponse: Response['messageResponse'];
  const asked = request.messageRequest;
  switch (asked?.$case) {
    case 'fileByFilename':
      messageResponse = files(registry.getFile(asked.value), `file ${JSON.stringify(asked.value)}`, descriptors);
      break;
    case 'fileContainingSymbol':
      messageResponse = files(fileDefining(descriptors, asked.value), `symbol ${JSON.stringify(asked.value)}`, descriptors);
      break;
    case 'fileContainingExtension': {
      const extendee = registry.getMessage(asked.value.containingType);
      const extension = extendee === undefined ? undefined : registry.getExtensionFor(extendee, asked.value.extensionNumber);
      messageResponse = files(extension?.file, `extension ${asked.value.extensionNumber} of ${JSON.stringify(asked.value.containingType)}`, descriptors);
      break;
    }
    case 'allExtensionNumbersOfType': {
      const type = registry.getMessage(asked.value);
      const extensionNumber = [...registry].filter((d) => d.kind === 'extension' && d.extendee.typeName === asked.value).map((d) => (d.kind === 'extension' ? d.number : 0));
      messageResponse = type === undefined
        ? notFound(`type ${JSON.stringify(asked.value)} not found`)
        : { $case: 'allExtensionNumbersResponse', value: { baseTypeName: asked.value, extensionNumber } };
      break;
    }
    case 'listServices':
      messageResponse = {
        $case: 'listServicesResponse',
        value: { service: [...registry].filter((d) => d.kind === 'service').map((d) => ({ name: d.typeName })) },
      };
      break;
    default:
      messageResponse = { $case: 'errorResponse', value: { errorCode: GrpcStatus.UNIMPLEMENTED, errorMessage: 'the request names no known reflection query' } };
  }
  return { validHost: request.host, originalRequest: request, messageResponse };
}

function serve(descriptors: ServedDescriptors) {
  return (call: ServerDuplexStream<Request, Response>): void => {
    call.on('data', (request: Request) => {
      let response: Response;
      try {
        response = answerReflection(descriptors, decoded(request));
      } catch (error) {
        call.emit('error', serviceError(statusOf(error)));
        return;
      }
      // A client that sends without reading is held by HTTP/2 flow control, not by our memory.
      if (!call.write(response)) {
        call.pause();
        call.once('drain', () => call.resume());
      }
    });
    call.on('end', () => call.end());
  };
}

/** Adds grpc.reflection.v1.ServerReflection and grpc.reflection.v1alpha.ServerReflection. */
export function addReflectionServices(server: Server, descriptors: ServedDescriptors): void {
  server.addService(withSafeDecoding(v1.ServerReflectionService), { serverReflectionInfo: serve(descriptors) });
  server.addService(withSafeDecoding(v1alpha.ServerReflectionService), { serverReflectionInfo: serve(descriptors) });
}
