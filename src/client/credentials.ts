// gRPC channel credentials for mutual TLS 1.3: verify the server against the CA and its name,
// present this client's certificate.
//
// grpc-js `ChannelCredentials.createSsl` builds its own secure context (no minVersion), so the
// context is built here with the policy and handed over with `createFromSecureContext`
// (grpc-js channel-credentials.ts). grpc-js then connects with `servername` = the target host and
// Node's default `checkServerIdentity`, so the server's subjectAltName must name the host (or IP)
// the client dials; `serverName` below checks another name instead (a load balancer address,
// an IP the certificate does not list).
import { checkServerIdentity, createSecureContext, type PeerCertificate } from 'node:tls';
import { ChannelCredentials } from '@grpc/grpc-js';

import { JobworkerError } from '../errors';
import { loadClientTlsMaterial, type LoadOptions, type TlsFilePaths, type TlsMaterial } from '../pki/load';
import { TLS_POLICY } from '../pki/tls-policy';

export interface ChannelCredentialsOptions {
  /** Name to verify the server certificate against instead of the dialled host. */
  serverName?: string;
}

export function createChannelCredentials(material: TlsMaterial, options: ChannelCredentialsOptions = {}): ChannelCredentials {
  if (material.use !== 'client') {
    throw new JobworkerError(
      'invalid-argument',
      `TLS material from ${material.paths.certificatePath} is for a ${material.use}, not a client`,
    );
  }
  const context = createSecureContext({
    ...TLS_POLICY,
    ca: material.caPem,
    cert: material.certificatePem,
    key: material.privateKeyPem,
  });
  const { serverName } = options;
  return ChannelCredentials.createFromSecureContext(context, {
    rejectUnauthorized: true,
    ...(serverName === undefined
      ? {}
      : { checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(serverName, cert) }),
  });
}

/**
 * Loads and validates the client's CA, certificate and key (errors name the file and the fix, e.g.
 * "client certificate /x/client.pem: expired on …; issue a new one with `job-worker pki client ...`")
 * and returns credentials plus the material (its `warnings` and `identity` are worth showing).
 */
export async function loadChannelCredentials(
  paths: TlsFilePaths,
  options: ChannelCredentialsOptions & LoadOptions = {},
): Promise<{ credentials: ChannelCredentials; material: TlsMaterial }> {
  const material = await loadClientTlsMaterial(paths, options);
  const { serverName } = options;
  return { credentials: createChannelCredentials(material, serverName === undefined ? {} : { serverName }), material };
}
