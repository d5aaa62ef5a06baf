// A throwaway PKI in a temporary directory, and the odd certificates the PKI itself refuses to
// issue (self-signed clients, forged subjects, missing CN…), made with @peculiar/x509 directly.
import '../../src/pki/keys'; // @peculiar/x509 setup

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createSecureContext } from 'node:tls';
import { ChannelCredentials } from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';

import {
  createCa,
  encodeRoles,
  issueClientCertificate,
  issueServerCertificate,
  randomSerialNumber,
  ROLES_EXTENSION_OID,
  TLS_POLICY,
  writePemFile,
  writePemFiles,
  type CertificateAuthority,
  type ClientCertificateOptions,
  type IssuedCertificate,
  type ServerCertificateOptions,
  type TlsFilePaths,
} from '../../src/pki';
import { generateKeyPair, privateKeyToPem } from '../../src/pki/keys';

export interface TestPki {
  dir: string;
  ca: CertificateAuthority;
  caPath: string;
  /** Writes a server certificate issued by `ca` and returns the three paths. */
  server(options?: ServerCertificateOptions, name?: string): Promise<TlsFilePaths & { issued: IssuedCertificate }>;
  /** Writes a client certificate issued by `ca` and returns the three paths. */
  client(options: ClientCertificateOptions, name?: string): Promise<TlsFilePaths & { issued: IssuedCertificate }>;
  /** Writes any issued certificate next to the CA and returns the three paths. */
  write(issued: IssuedCertificate, name: string): Promise<TlsFilePaths & { issued: IssuedCertificate }>;
  remove(): void;
}

let seq = 0;

export async function createTestPki(ca?: CertificateAuthority): Promise<TestPki> {
  const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-pki-'));
  const authority = ca ?? (await createCa({ commonName: 'jobworker test CA' }));
  const caPath = path.join(dir, 'ca.pem');
  await writePemFile(caPath, authority.certificatePem, { mode: 0o644 });
  const pki: TestPki = {
    dir,
    ca: authority,
    caPath,
    async write(issued, name) {
      const certificatePath = path.join(dir, `${name}.pem`);
      const privateKeyPath = path.join(dir, `${name}-key.pem`);
      await writePemFiles(issued, { certificatePath, privateKeyPath });
      return { caPath, certificatePath, privateKeyPath, issued };
    },
    async server(options = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] }, name = `server-${seq++}`) {
      return pki.write(await issueServerCertificate(authority, options), name);
    },
    async client(options, name = `client-${options.name}-${seq++}`) {
      return pki.write(await issueClientCertificate(authority, options), name);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return pki;
}

export interface CraftOptions {
  /** Subject; a JSON name, so every attribute is exactly what the test says. */
  subject: x509.JsonName;
  /** Signing CA; omitted: self-signed. */
  issuer?: CertificateAuthority;
  extendedKeyUsages?: string[];
  /** Roles extension content; omitted: no extension. */
  roles?: string[];
  /** Roles extension raw DER value (for malformed extensions). */
  rolesDer?: Uint8Array;
  /** Repeat the roles extension this many times. */
  rolesCount?: number;
  ca?: boolean;
  notBefore?: Date;
  notAfter?: Date;
}

/** A certificate the PKI would never issue, signed by `issuer` (or self-signed). */
export async function craftCertificate(options: CraftOptions): Promise<IssuedCertificate> {
  const keys = await generateKeyPair('P-256');
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(
      options.ca === true
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    new x509.ExtendedKeyUsageExtension(options.extendedKeyUsages ?? [x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const rolesValue = options.rolesDer ?? (options.roles === undefined ? undefined : encodeRoles(options.roles));
  if (rolesValue !== undefined) {
    for (let i = 0; i < (options.rolesCount ?? 1); i++) {
      extensions.push(new x509.Extension(ROLES_EXTENSION_OID, false, rolesValue));
    }
  }
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = options.notAfter ?? new Date(Date.now() + 24 * 3600_000);
  const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' };
  const certificate =
    options.issuer === undefined
      ? await x509.X509CertificateGenerator.createSelfSigned({
          serialNumber: randomSerialNumber(),
          name: options.subject,
          notBefore,
          notAfter,
          keys,
          signingAlgorithm,
          extensions,
        })
      : await x509.X509CertificateGenerator.create({
          serialNumber: randomSerialNumber(),
          subject: options.subject,
          issuer: options.issuer.certificate.subjectName,
          notBefore,
          notAfter,
          publicKey: keys.publicKey,
          signingKey: options.issuer.privateKey,
          signingAlgorithm,
          extensions: [
            ...extensions,
            await x509.AuthorityKeyIdentifierExtension.create(options.issuer.certificate.publicKey),
          ],
        });
  return {
    certificate,
    certificatePem: certificate.toString('pem'),
    privateKeyPem: privateKeyToPem(keys.privateKey),
  };
}

/**
 * Channel credentials straight from PEM, bypassing the loader's checks (which would refuse the
 * bad certificates the tests present), with the same TLS policy as the real client.
 */
export function rawChannelCredentials(options: { ca: string; cert?: string; key?: string }): ChannelCredentials {
  const context = createSecureContext({
    ...TLS_POLICY,
    ca: options.ca,
    ...(options.cert === undefined ? {} : { cert: options.cert }),
    ...(options.key === undefined ? {} : { key: options.key }),
  });
  return ChannelCredentials.createFromSecureContext(context);
}

/** rawChannelCredentials from a CA, certificate and key on disk (files the tests issued). */
export function rawChannelCredentialsFromFiles(files: TlsFilePaths): ChannelCredentials {
  return rawChannelCredentials({ ca: readFileSync(files.caPath, 'utf8'), cert: readFileSync(files.certificatePath, 'utf8'), key: readFileSync(files.privateKeyPath, 'utf8') });
}
