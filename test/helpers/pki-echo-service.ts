// A throwaway gRPC service over the real grpc-js server, with Buffer serializers (no proto):
//   WhoAmI (unary)  answers the caller's identity as JSON, as the server sees it;
//   Echo   (bidi)   echoes every message, to hold a stream open across a reload.
import {
  Client,
  Metadata,
  Server,
  status as GrpcStatus,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
  type MethodDefinition,
  type ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';

import {
  createAuthenticationInterceptor,
  peerIdentityOf,
  type AuthenticationInterceptorOptions,
} from '../../src/server/peer-identity';

const identity = (b: Buffer): Buffer => b;

function method(name: string, requestStream: boolean, responseStream: boolean): MethodDefinition<Buffer, Buffer> {
  return {
    path: `/jobworker.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

export const ECHO_SERVICE: ServiceDefinition = {
  WhoAmI: method('WhoAmI', false, false),
  Echo: method('Echo', true, true),
};

export interface SeenIdentity {
  name: string;
  roles: string[];
  ignoredRoles: string[];
}

export interface EchoServer {
  port: number;
  /** How many times a handler started: proves refused calls never reached service code. */
  handlerCalls: number;
  refusals: Array<{ method: string; code: GrpcStatus; details: string }>;
  close(): void;
}

export async function startEchoServer(
  credentials: ServerCredentials,
  options: AuthenticationInterceptorOptions = {},
): Promise<EchoServer> {
  const state: EchoServer = { port: 0, handlerCalls: 0, refusals: [], close: () => server.forceShutdown() };
  const server = new Server({
    interceptors: [
      createAuthenticationInterceptor({
        ...options,
        onRefused: (methodPath, refusal) => state.refusals.push({ method: methodPath, ...refusal }),
      }),
    ],
  });
  server.addService(ECHO_SERVICE, {
    WhoAmI: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      state.handlerCalls++;
      const seen = peerIdentityOf(call);
      const body: SeenIdentity = { name: seen.name, roles: seen.roles, ignoredRoles: seen.ignoredRoles };
      callback(null, Buffer.from(JSON.stringify(body)));
    },
    Echo: (call: ServerDuplexStream<Buffer, Buffer>) => {
      state.handlerCalls++;
      call.on('data', (message: Buffer) => call.write(message));
      call.on('end', () => call.end());
    },
  });
  state.port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('localhost:0', credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
  return state;
}

/** A client for the server on `port`, dialling "localhost" (grpc-js sends the dialled host as SNI; an IP there makes Node warn, DEP0123). */
export function echoClient(port: number, credentials: ChannelCredentials, options: ChannelOptions = {}, host = 'localhost'): Client {
  return new Client(`${host}:${port}`, credentials, options);
}

/** Calls WhoAmI; resolves with what the server saw, rejects with the ServiceError. */
export function whoAmI(client: Client, deadlineMs = 10_000): Promise<SeenIdentity> {
  const m = ECHO_SERVICE.WhoAmI!;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      Buffer.alloc(0),
      new Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error: ServiceError | null, response?: Buffer) => {
        if (error !== null) reject(error);
        else resolve(JSON.parse(response!.toString('utf8')) as SeenIdentity);
      },
    );
  });
}

/** Opens an Echo stream. */
export function openEcho(client: Client): ClientDuplexStream<Buffer, Buffer> {
  const m = ECHO_SERVICE.Echo!;
  return client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new Metadata(), {});
}

/** Writes `text` on the stream and resolves with the next message it receives. */
export function roundTrip(stream: ClientDuplexStream<Buffer, Buffer>, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onData = (message: Buffer) => {
      stream.off('error', onError);
      resolve(message.toString('utf8'));
    };
    const onError = (error: Error) => {
      stream.off('data', onData);
      reject(error);
    };
    stream.once('data', onData);
    stream.once('error', onError);
    stream.write(Buffer.from(text));
  });
}

/** Rejection of a promise as a gRPC ServiceError (fails the test if it resolved). */
export async function serviceErrorOf(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}
