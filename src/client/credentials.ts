// gRPC channel credentials for mutual TLS 1.3: verify the server against the CA and its name,
// present this client's certificate.
//
// grpc-js `ChannelCredentials.createSsl` builds its own secure context (no minVersion), so the
// context is built here with the policy and handed over with `createFromSecureContext`
// (grpc-js channel-credentials.ts). grpc-js then connects with `servername` = the target host and
// Node's default `checkServerIdentity`, so the server's subjectAltName must name the host (or IP)
// the client dials; `serverName` below checks another name instead (a load balancer address,
// an IP the certificate does not list).
import { checkServerIdentity, createSecureContext, type PeerCertificate, type SecureContext } from 'node:tls';
import { ChannelCredentials } from '@grpc/grpc-js';

import { JobworkerError } from '../errors';
import type { LoadOptions, TlsFilePaths, TlsMaterial } from '../pki/load';
import { quickLoadClientTls } from '../pki/quick-load';
import { TLS_POLICY } from '../pki/tls-policy';

export interface ChannelCredentialsOptions {
  /** Name to verify the server certificate against instead of the dialled host. */
  serverName?: string;
}

export function createChannelCredentials(material: TlsMaterial, options: ChannelCredentialsOptions = {}): ChannelCredentials {
  return channelCredentials(clientTlsContext(material, options));
}

function clientTlsContext(material: TlsMaterial, options: ChannelCredentialsOptions): ClientTlsContext {
  if (material.use !== 'client') {
    throw new JobworkerError(
      'invalid-argument',
      `TLS material from ${material.paths.certificatePath} is for a ${material.use}, not a client`,
    );
  }
  return tlsContextFromPems(material, options);
}

/**
 * What a plain TLS connection needs to be the same as the channel's: the context (policy, CA, our
 * certificate) and, with `serverName`, the name to verify the server against.
 */
export interface ClientTlsContext {
  secureContext: SecureContext;
  checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
}

function tlsContextFromPems(pems: { caPem: string; certificatePem: string; privateKeyPem: string }, options: ChannelCredentialsOptions): ClientTlsContext {
  const secureContext = createSecureContext({
    ...TLS_POLICY,
    ca: pems.caPem,
    cert: pems.certificatePem,
    key: pems.privateKeyPem,
  });
  const { serverName } = options;
  return serverName === undefined
    ? { secureContext }
    : { secureContext, checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(serverName, cert) };
}

function channelCredentials(tls: ClientTlsContext): ChannelCredentials {
  return ChannelCredentials.createFromSecureContext(tls.secureContext, {
    rejectUnauthorized: true,
    ...(tls.checkServerIdentity === undefined ? {} : { checkServerIdentity: tls.checkServerIdentity }),
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
  const { material, tls } = await loadClientTls(paths, options);
  return { credentials: channelCredentials(tls), material };
}

/** The full loader's material and the TLS settings built from it. */
async function loadClientTls(paths: TlsFilePaths, options: ChannelCredentialsOptions & LoadOptions): Promise<{ material: TlsMaterial; tls: ClientTlsContext }> {
  // The certificate parser is loaded only by the full check (see connectionCredentials).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { loadClientTlsMaterial } = require('../pki/load') as typeof import('../pki/load');
  const material = await loadClientTlsMaterial(paths, options);
  return { material, tls: clientTlsContext(material, options) };
}

/** Credentials for a connection, the warnings worth showing, and the certificate (DER) presented. */
export interface ConnectionCredentials {
  credentials: ChannelCredentials;
  /** The same TLS settings for a connection of the client's own (./log-session.ts). */
  tls: ClientTlsContext;
  warnings: string[];
  certificateDer: Buffer;
}

/**
 * loadChannelCredentials for a client that wants to connect fast: files that pass Node's own checks
 * (../pki/quick-load.ts) are used as they are; anything else goes through the full loader, which
 * either accepts them too or throws its TlsMaterialError naming the file and the fix.
 */
export async function connectionCredentials(paths: TlsFilePaths, options: ChannelCredentialsOptions = {}): Promise<ConnectionCredentials> {
  const quick = await quickLoadClientTls(paths);
  if (quick !== undefined) {
    const tls = tlsContextFromPems(quick, options);
    return { credentials: channelCredentials(tls), tls, warnings: quick.warnings, certificateDer: quick.certificateDer };
  }
  const { material, tls } = await loadClientTls(paths, options);
  return { credentials: channelCredentials(tls), tls, warnings: material.warnings, certificateDer: Buffer.from(material.certificate.rawData) };
}
