// Loading and validating a key/certificate/CA set before it is used, so that a daemon (or a client)
// refuses to start with a message that names the file and says what is wrong with it, instead of
// failing later inside a TLS handshake with an OpenSSL error.
import './keys'; // sets up @peculiar/x509 before use

import { createPrivateKey, X509Certificate as NodeX509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as x509 from '@peculiar/x509';

import { errorCode } from '../errors';
import { TlsMaterialError, type TlsMaterialProblem } from './tls-material-error';
import { day, expiryWarning, keyModeWarning, REMEDY } from './tls-warnings';

export { EXPIRY_WARNING_DAYS } from './tls-warnings';
import { CertificateIdentityError, identityFromCertificate, type CertificateIdentity } from './identity';
import type { CertificateAuthority } from './issue';
import { importSigningKey } from './keys';

export type TlsUse = 'server' | 'client';

export { TlsMaterialError, type TlsMaterialProblem } from './tls-material-error';

export interface TlsFilePaths {
  /** PEM file with the CA certificate(s) to trust (several during a CA rotation). */
  caPath: string;
  /** PEM file with this side's certificate (optionally followed by intermediates). */
  certificatePath: string;
  /** PEM file with this side's private key (unencrypted; protected by its 0600 mode). */
  privateKeyPath: string;
}

/** A validated set, ready for `tls.createSecureContext`. PEM fields are re-encoded from what was parsed. */
export interface TlsMaterial {
  use: TlsUse;
  paths: TlsFilePaths;
  /** Trusted CA certificate(s), PEM. */
  caPem: string;
  /** This side's certificate chain (leaf first), PEM. */
  certificatePem: string;
  /** This side's private key, PKCS#8 PEM. */
  privateKeyPem: string;
  certificate: x509.X509Certificate;
  caCertificates: x509.X509Certificate[];
  /** For a client: the identity the server will see. */
  identity?: CertificateIdentity;
  /** Things worth logging that do not prevent use (expiring soon, key file readable by others…). */
  warnings: string[];
}

export interface LoadOptions {
  /** The time to validate against (tests); default now. */
  now?: Date;
  /** A client certificate without roles is expected (a daemon's to reach NATS): no warning for it. */
  rolesNotExpected?: boolean;
}

const SERVER_AUTH = x509.ExtendedKeyUsage.serverAuth as string;
const CLIENT_AUTH = x509.ExtendedKeyUsage.clientAuth as string;


interface ParsedCertificate {
  cert: x509.X509Certificate;
  node: NodeX509Certificate;
}

export function loadServerTlsMaterial(paths: TlsFilePaths, options: LoadOptions = {}): Promise<TlsMaterial> {
  return loadTlsMaterial('server', paths, options);
}

export function loadClientTlsMaterial(paths: TlsFilePaths, options: LoadOptions = {}): Promise<TlsMaterial> {
  return loadTlsMaterial('client', paths, options);
}

export async function loadTlsMaterial(use: TlsUse, paths: TlsFilePaths, options: LoadOptions = {}): Promise<TlsMaterial> {
  const now = options.now ?? new Date();
  const warnings: string[] = [];
  const caLabel = 'CA certificate';
  const certLabel = `${use} certificate`;
  const keyLabel = `${use} private key`;

  const cas = parseCertificates(caLabel, paths.caPath, await readPem(caLabel, paths.caPath));
  for (const ca of cas) {
    if (ca.cert.getExtension(x509.BasicConstraintsExtension)?.ca !== true) {
      fail(caLabel, paths.caPath, 'not-a-ca', `${describe(ca.cert)} is not a CA certificate (basicConstraints cA is not set)`);
    }
  }
  const chain = parseCertificates(certLabel, paths.certificatePath, await readPem(certLabel, paths.certificatePath));
  const leaf = chain[0]!;
  const key = parsePrivateKey(keyLabel, paths.privateKeyPath, await readPem(keyLabel, paths.privateKeyPath));

  checkValidity(certLabel, paths.certificatePath, leaf.cert, now, REMEDY[use]);
  if (!leaf.node.checkPrivateKey(key)) {
    fail(keyLabel, paths.privateKeyPath, 'key-mismatch', `does not match the certificate in ${paths.certificatePath}`);
  }

  const anchor = findTrustAnchor(leaf, chain.slice(1), cas);
  if (anchor === undefined) {
    fail(
      certLabel,
      paths.certificatePath,
      'untrusted',
      `is not signed by ${cas.length === 1 ? 'the CA' : `any of the ${cas.length} CA certificates`} in ${paths.caPath} ` +
        `(certificate issuer: ${leaf.cert.issuer}; ${caSubjects(cas.map((ca) => ca.cert.subject))})`,
    );
  }
  checkValidity(caLabel, paths.caPath, anchor.cert, now, REMEDY.ca);
  for (const ca of cas) {
    if (ca !== anchor && ca.cert.notAfter < now) {
      warnings.push(`${caLabel} ${paths.caPath}: ${describe(ca.cert)} expired on ${day(ca.cert.notAfter)}`);
    }
  }

  checkUsage(use, certLabel, paths.certificatePath, leaf.cert);
  let identity: CertificateIdentity | undefined;
  if (use === 'client') {
    try {
      identity = identityFromCertificate(leaf.cert);
    } catch (error) {
      if (!(error instanceof CertificateIdentityError)) throw error;
      fail(certLabel, paths.certificatePath, 'no-identity', error.message);
    }
    if (identity.roles.length === 0 && options.rolesNotExpected !== true) {
      warnings.push(`${certLabel} ${paths.certificatePath}: carries no known role; the server will refuse every call`);
    }
  } else if (leaf.cert.getExtension(x509.SubjectAlternativeNameExtension) === null) {
    warnings.push(`${certLabel} ${paths.certificatePath}: has no subjectAltName; clients will not accept it for any name`);
  }

  const expiry = expiryWarning(certLabel, paths.certificatePath, leaf.cert.notAfter, now, REMEDY[use]);
  if (expiry !== undefined) warnings.push(expiry);
  const keyMode = await keyModeWarning(keyLabel, paths.privateKeyPath);
  if (keyMode !== undefined) warnings.push(keyMode);

  return {
    use,
    paths: { ...paths },
    caPem: cas.map((ca) => ca.cert.toString('pem')).join('\n') + '\n',
    certificatePem: chain.map((c) => c.cert.toString('pem')).join('\n') + '\n',
    privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certificate: leaf.cert,
    caCertificates: cas.map((ca) => ca.cert),
    ...(identity === undefined ? {} : { identity }),
    warnings,
  };
}

/** Loads a CA certificate and key to issue certificates with (`job-worker pki server|client`). */
export async function loadCa(
  paths: { certificatePath: string; privateKeyPath: string },
  options: LoadOptions = {},
): Promise<CertificateAuthority> {
  const now = options.now ?? new Date();
  const certLabel = 'CA certificate';
  const keyLabel = 'CA private key';
  const certs = parseCertificates(certLabel, paths.certificatePath, await readPem(certLabel, paths.certificatePath));
  if (certs.length !== 1) {
    fail(certLabel, paths.certificatePath, 'invalid', `holds ${certs.length} certificates; expected exactly the CA's own`);
  }
  const ca = certs[0]!;
  if (ca.cert.getExtension(x509.BasicConstraintsExtension)?.ca !== true) {
    fail(certLabel, paths.certificatePath, 'not-a-ca', `${describe(ca.cert)} is not a CA certificate`);
  }
  const usage = ca.cert.getExtension(x509.KeyUsagesExtension);
  if (usage !== null && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    fail(certLabel, paths.certificatePath, 'wrong-usage', 'its key usage does not allow signing certificates (keyCertSign)');
  }
  checkValidity(certLabel, paths.certificatePath, ca.cert, now, REMEDY.ca);
  const pem = await readPem(keyLabel, paths.privateKeyPath);
  const key = parsePrivateKey(keyLabel, paths.privateKeyPath, pem);
  if (!ca.node.checkPrivateKey(key)) {
    fail(keyLabel, paths.privateKeyPath, 'key-mismatch', `does not match the CA certificate in ${paths.certificatePath}`);
  }
  let signing;
  try {
    signing = await importSigningKey(key.export({ type: 'pkcs8', format: 'pem' }));
  } catch (error) {
    fail(keyLabel, paths.privateKeyPath, 'invalid', (error as Error).message);
  }
  return {
    certificate: ca.cert,
    certificatePem: ca.cert.toString('pem'),
    privateKey: signing.key,
    privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    keyAlgorithm: signing.algorithm,
  };
}

function fail(label: string, file: string, problem: TlsMaterialProblem, reason: string): never {
  throw new TlsMaterialError(file, problem, `${label} ${file}: ${reason}`);
}

async function readPem(label: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT') fail(label, file, 'missing', 'file not found');
    if (code === 'EACCES' || code === 'EPERM') fail(label, file, 'unreadable', `not readable by this user (${code})`);
    if (code === 'EISDIR') fail(label, file, 'unreadable', 'is a directory, not a file');
    fail(label, file, 'unreadable', `cannot be read (${code ?? (error as Error).message})`);
  }
}

function parseCertificates(label: string, file: string, text: string): ParsedCertificate[] {
  const blocks = decodePem(text).filter((block) => block.type === 'CERTIFICATE');
  if (blocks.length === 0) fail(label, file, 'not-pem', 'contains no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return blocks.map((block, i) => {
    try {
      const der = Buffer.from(block.rawData);
      return { cert: new x509.X509Certificate(der), node: new NodeX509Certificate(der) };
    } catch (error) {
      return fail(label, file, 'invalid', `certificate #${i + 1} is not a valid X.509 certificate (${(error as Error).message})`);
    }
  });
}

function parsePrivateKey(label: string, file: string, text: string): KeyObject {
  const blocks = decodePem(text).filter((block) => block.type.endsWith('PRIVATE KEY'));
  if (blocks.length === 0) fail(label, file, 'not-pem', 'contains no PEM private key (-----BEGIN PRIVATE KEY-----)');
  if (blocks.length > 1) fail(label, file, 'invalid', 'contains more than one private key');
  const block = blocks[0]!;
  if (block.type === 'ENCRYPTED PRIVATE KEY' || block.headers.some((h) => h.key === 'Proc-Type' && h.value.includes('ENCRYPTED'))) {
    fail(label, file, 'encrypted-key', 'is encrypted; jobworker needs an unencrypted key, protected by the file mode 0600');
  }
  try {
    return createPrivateKey(text);
  } catch (error) {
    return fail(label, file, 'invalid', `is not a usable private key (${(error as Error).message})`);
  }
}

function decodePem(text: string): x509.PemStruct[] {
  try {
    return x509.PemConverter.decodeWithHeaders(text);
  } catch {
    return [];
  }
}

function checkValidity(label: string, file: string, cert: x509.X509Certificate, now: Date, remedy: string): void {
  if (now < cert.notBefore) {
    fail(label, file, 'not-yet-valid', `is not valid until ${day(cert.notBefore)} (check this host's clock)`);
  }
  if (now > cert.notAfter) fail(label, file, 'expired', `expired on ${day(cert.notAfter)}; ${remedy}`);
}

/** Follows issuers from the leaf through any intermediates given with it to one of the CAs. */
function findTrustAnchor(
  leaf: ParsedCertificate,
  intermediates: ParsedCertificate[],
  cas: ParsedCertificate[],
): ParsedCertificate | undefined {
  const pool = [...intermediates];
  let current = leaf;
  for (let depth = 0; depth <= intermediates.length; depth++) {
    const anchor = cas.find((ca) => issuedBy(current, ca));
    if (anchor !== undefined) return anchor;
    const next = pool.findIndex((candidate) => issuedBy(current, candidate));
    if (next < 0) return undefined;
    current = pool.splice(next, 1)[0]!;
  }
  return undefined;
}

function issuedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  return child.node.checkIssued(parent.node) && child.node.verify(parent.node.publicKey);
}

function checkUsage(use: TlsUse, label: string, file: string, cert: x509.X509Certificate): void {
  const wanted = use === 'server' ? SERVER_AUTH : CLIENT_AUTH;
  const wantedName = use === 'server' ? 'serverAuth' : 'clientAuth';
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca === true) {
    fail(label, file, 'wrong-usage', `is a CA certificate; a ${use} needs its own certificate issued by the CA`);
  }
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku === null) {
    fail(label, file, 'wrong-usage', `has no extended key usage; a ${use} certificate needs ${wantedName}`);
  }
  const usages = eku.usages.map(String);
  if (!usages.includes(wanted)) {
    const has = usages.map((u) => (u === SERVER_AUTH ? 'serverAuth' : u === CLIENT_AUTH ? 'clientAuth' : u)).join(', ');
    fail(label, file, 'wrong-usage', `is for ${has || 'nothing'}, not ${wantedName}: it cannot be used as a ${use} certificate`);
  }
  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  if (keyUsage !== null && (keyUsage.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    fail(label, file, 'wrong-usage', 'its key usage lacks digitalSignature, which TLS 1.3 needs');
  }
}

/**
 * The CA file's subjects for a message: all of a few, the first ones of a bundle (a system bundle
 * holds 140 and would make the line 8 KB long).
 */
function caSubjects(subjects: readonly string[]): string {
  if (subjects.length <= 3) return `CA: ${subjects.join('; ')}`;
  return `CAs there: "${subjects[0]}", "${subjects[1]}" and ${subjects.length - 2} more; a system bundle? It needs the CA that issued the certificate`;
}

function describe(cert: x509.X509Certificate): string {
  return `"${cert.subject}"`;
}
