// A real JobworkerServer (real TLS 1.3 on loopback, real Worker with real cgroups) in this process,
// with clients for any identity and role set.
import { ChannelCredentials } from '@grpc/grpc-js';

import { JobworkerClient } from '../../src/client';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { Logger } from '../../src/logger';
import type { Role } from '../../src/pki';
import { JobworkerServer, type JobworkerServerOptions } from '../../src/server/server';
import { createTestPki, type TestPki } from './pki';
import type { WorkerOptions } from '../../src/worker';
import { openTestWorker, type TestWorker } from './worker';

export interface TestServer {
  server: JobworkerServer;
  worker: TestWorker;
  pki: TestPki;
  address: string;
  /** A connected client with a certificate for `name` carrying `roles`. */
  client(name: string, roles: Role[]): Promise<JobworkerClient>;
  /** A raw generated stub with the given credentials (for refused or odd clients). */
  stub(credentials: ChannelCredentials): pb.JobServiceClient;
  close(): Promise<void>;
}

export type TestServerLimits = Omit<JobworkerServerOptions, 'worker' | 'tls' | 'listen' | 'logger'>;

export async function startTestServer(
  label: string,
  options: { logLines?: string[]; server?: TestServerLimits; maxStreamsPerIdentity?: number; worker?: Partial<WorkerOptions> } = {},
): Promise<TestServer> {
  const pki = await createTestPki();
  const worker = await openTestWorker(label, { defaults: { stopGraceMs: 2000 }, ...options.worker });
  const serverFiles = await pki.server();
  const logger = new Logger({ level: 'info', format: 'json', write: (line) => options.logLines?.push(line) });
  const server = await JobworkerServer.start({
    worker: worker.worker,
    tls: serverFiles,
    listen: '127.0.0.1:0',
    logger,
    ...(options.maxStreamsPerIdentity === undefined ? {} : { maxStreamsPerIdentity: options.maxStreamsPerIdentity }),
    ...options.server,
  });
  const address = `localhost:${server.port}`;
  const clients: JobworkerClient[] = [];
  const stubs: pb.JobServiceClient[] = [];
  return {
    server,
    worker,
    pki,
    address,
    async client(name, roles) {
      const files = await pki.client({ name, roles });
      const client = await JobworkerClient.connect({ address, tls: files, callTimeoutMs: 20_000 });
      clients.push(client);
      return client;
    },
    stub(credentials) {
      const stub = new pb.JobServiceClient(address, credentials);
      stubs.push(stub);
      return stub;
    },
    async close() {
      for (const client of clients) client.close();
      for (const stub of stubs) stub.close();
      await server.shutdown(1000);
      await worker.cleanup();
      pki.remove();
    },
  };
}

/** Resolves with the gRPC status name a promise rejects with ('OK' if it resolves). */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    const code = (error as { codeName?: string; code?: number }).codeName;
    if (code !== undefined) return code;
    throw error;
  }
}
