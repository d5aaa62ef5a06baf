// Creating a CA and issuing server and client certificates (X.509 v3, via @peculiar/x509).
//
// Lifetimes (defaults, each overridable per call):
//   CA      10 years  rotating a CA means redistributing it to every client and server; its key
//                     is meant to stay offline on the operator's machine, so it is rarely exposed.
//   server   1 year   replaced in place (SIGHUP reload, no restart), so yearly renewal is cheap.
//   client  90 days   there is no revocation list: a short life bounds how long a leaked or
//                     no-longer-wanted client key (and the roles it carries) remains usable.
// notBefore is set 5 minutes in the past so a freshly issued certificate is accepted by a host
// whose clock runs slightly behind the issuer's.
import './keys'; // sets up @peculiar/x509 (Reflect metadata, WebCrypto provider) before use

import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

import { ValidationError } from '../errors';
import {
  checkKeyAlgorithm,
  DEFAULT_KEY_ALGORITHM,
  generateKeyPair,
  privateKeyToPem,
  signingAlgorithmFor,
  type CryptoKey,
  type KeyAlgorithm,
} from './keys';
import { encodeRoles, isRole, ROLES, ROLES_EXTENSION_OID, type Role } from './roles';

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_VALIDITY_DAYS = { ca: 3650, server: 365, client: 90 } as const;
/** How far notBefore is set in the past, to tolerate clock skew between hosts. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Longest validity accepted for any certificate (about 30 years). */
const MAX_VALIDITY_DAYS = 11_000;

/** A certificate with its freshly generated private key. */
export interface IssuedCertificate {
  certificate: x509.X509Certificate;
  certificatePem: string;
  /** PKCS#8 PEM; write it with `writePemFiles` (mode 0600). */
  privateKeyPem: string;
}

/** A CA able to sign: its certificate and private key. */
export interface CertificateAuthority extends IssuedCertificate {
  privateKey: CryptoKey;
  keyAlgorithm: KeyAlgorithm;
}

export interface ValidityOptions {
  /** Lifetime in whole days from now (or from `notBefore` when given). */
  validityDays?: number;
  /** Start of validity; default: now minus CLOCK_SKEW_MS. */
  notBefore?: Date;
  /** End of validity; overrides `validityDays`. */
  notAfter?: Date;
  /** Key of the new certificate; default P-256. */
  keyAlgorithm?: KeyAlgorithm;
}

export interface CaOptions extends ValidityOptions {
  /** Subject CN of the CA; default "jobworker CA". */
  commonName?: string;
}

export interface ServerCertificateOptions extends ValidityOptions {
  /** DNS names the server answers to (subjectAltName dNSName). */
  dnsNames?: readonly string[];
  /** IP addresses the server answers on (subjectAltName iPAddress). */
  ipAddresses?: readonly string[];
  /** Subject CN, informational only (clients check the SANs); default: the first name given. */
  commonName?: string;
}

export interface ClientCertificateOptions extends ValidityOptions {
  /** The identity: becomes the subject CN, the owner of the jobs this client starts. */
  name: string;
  /** At least one role; stored in the roles extension. */
  roles: readonly Role[];
}

/** Identity names we issue: a conservative charset, so names are safe in logs, paths and shells. */
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export async function createCa(options: CaOptions = {}): Promise<CertificateAuthority> {
  const keyAlgorithm = checkKeyAlgorithm(options.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM);
  const commonName = checkCommonName(options.commonName ?? 'jobworker CA', 'commonName');
  const { notBefore, notAfter } = validity(options, DEFAULT_VALIDITY_DAYS.ca);
  const keys = await generateKeyPair(keyAlgorithm);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ CN: [commonName] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: signingAlgorithmFor(keyAlgorithm),
    extensions: [
      // A CA that signs leaves only: pathLen 0 forbids intermediate CAs below it.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certificate,
    certificatePem: certificate.toString('pem'),
    privateKey: keys.privateKey,
    privateKeyPem: privateKeyToPem(keys.privateKey),
    keyAlgorithm,
  };
}

export async function issueServerCertificate(
  ca: CertificateAuthority,
  options: ServerCertificateOptions,
): Promise<IssuedCertificate> {
  const dnsNames = (options.dnsNames ?? []).map((name, i) => checkDnsName(name, `dnsNames[${i}]`));
  const ipAddresses = (options.ipAddresses ?? []).map((ip, i) => checkIpAddress(ip, `ipAddresses[${i}]`));
  if (dnsNames.length + ipAddresses.length === 0) {
    throw new ValidationError('dnsNames', 'a server certificate needs at least one DNS name or IP address');
  }
  const commonName = checkCommonName(options.commonName ?? dnsNames[0] ?? ipAddresses[0]!, 'commonName');
  const names: x509.JsonGeneralName[] = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  return issueLeaf(ca, options, DEFAULT_VALIDITY_DAYS.server, commonName, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(names),
  ]);
}

export async function issueClientCertificate(
  ca: CertificateAuthority,
  options: ClientCertificateOptions,
): Promise<IssuedCertificate> {
  if (typeof options.name !== 'string' || !CLIENT_NAME.test(options.name)) {
    throw new ValidationError(
      'name',
      'must be 1-64 characters of letters, digits and . _ @ + -, starting with a letter or digit',
    );
  }
  const roles = checkRoles(options.roles);
  return issueLeaf(ca, options, DEFAULT_VALIDITY_DAYS.client, options.name, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    new x509.Extension(ROLES_EXTENSION_OID, false, encodeRoles(roles)),
  ]);
}

/**
 * A daemon's certificate for NATS (docs/fleet.md): client authentication, the daemon's fleet host
 * name as CN, and no roles — it opens no gRPC door. Issue it from a CA of its own (the fleet CA), so
 * no user's certificate can ever reach NATS.
 */
export async function issueNatsClientCertificate(ca: CertificateAuthority, options: ValidityOptions & { name: string }): Promise<IssuedCertificate> {
  if (typeof options.name !== 'string' || !CLIENT_NAME.test(options.name)) {
    throw new ValidationError('name', 'must be 1-64 characters of letters, digits and . _ @ + -, starting with a letter or digit');
  }
  return issueLeaf(ca, options, DEFAULT_VALIDITY_DAYS.server, options.name, [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]);
}

async function issueLeaf(
  ca: CertificateAuthority,
  options: ValidityOptions,
  defaultDays: number,
  commonName: string,
  extensions: x509.Extension[],
): Promise<IssuedCertificate> {
  const keyAlgorithm = checkKeyAlgorithm(options.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM);
  const { notBefore, notAfter } = validity(options, defaultDays);
  if (notAfter > ca.certificate.notAfter) {
    throw new ValidationError(
      'validityDays',
      `the certificate would outlive its CA (CA valid until ${ca.certificate.notAfter.toISOString()}); ` +
        'issue it for fewer days or renew the CA',
    );
  }
  const keys = await generateKeyPair(keyAlgorithm);
  const caKeyId = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    // JSON form, never a DN string: a name like "bob, OU=admin" stays one CN value.
    subject: [{ CN: [commonName] }],
    issuer: ca.certificate.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.privateKey,
    signingAlgorithm: signingAlgorithmFor(ca.keyAlgorithm),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      caKeyId === undefined
        ? await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey)
        : new x509.AuthorityKeyIdentifierExtension(caKeyId),
      ...extensions,
    ],
  });
  return {
    certificate,
    certificatePem: certificate.toString('pem'),
    privateKeyPem: privateKeyToPem(keys.privateKey),
  };
}

/** 128 random bits as a positive, fixed-length DER INTEGER (RFC 5280: at most 20 octets, positive). */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40; // positive, and no leading zero octet to be stripped
  return bytes.toString('hex');
}

function validity(options: ValidityOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  if (options.notBefore !== undefined && Number.isNaN(options.notBefore.getTime())) {
    throw new ValidationError('notBefore', 'is not a valid date');
  }
  if (options.notAfter !== undefined && Number.isNaN(options.notAfter.getTime())) {
    throw new ValidationError('notAfter', 'is not a valid date');
  }
  const days = options.validityDays ?? defaultDays;
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new ValidationError('validityDays', `must be a whole number of days from 1 to ${MAX_VALIDITY_DAYS}`);
  }
  const start = options.notBefore?.getTime() ?? now;
  const notBefore = options.notBefore ?? new Date(now - CLOCK_SKEW_MS);
  const notAfter = options.notAfter ?? new Date(start + days * DAY_MS);
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new ValidationError('notAfter', 'must be later than notBefore');
  }
  return { notBefore, notAfter };
}

function checkRoles(roles: readonly string[]): Role[] {
  if (!Array.isArray(roles) || roles.length === 0) {
    throw new ValidationError('roles', `at least one role is required (${ROLES.join(', ')})`);
  }
  const unique: Role[] = [];
  for (const role of roles) {
    if (!isRole(role)) {
      throw new ValidationError('roles', `unknown role ${JSON.stringify(role)}; known roles: ${ROLES.join(', ')}`);
    }
    if (!unique.includes(role)) unique.push(role);
  }
  return unique;
}

function checkCommonName(value: string, field: string): string {
  // ub-common-name is 64 (RFC 5280); no control characters, no surrounding blanks.
  // eslint-disable-next-line no-control-regex
  if (value.length < 1 || value.length > 64 || /[\u0000-\u001f\u007f-\u009f]/.test(value) || value.trim() !== value) {
    throw new ValidationError(field, 'must be 1-64 printable characters without leading or trailing blanks');
  }
  return value;
}

function checkDnsName(value: string, field: string): string {
  const name = value.toLowerCase();
  if (name.length > 253 || !name.split('.').every((label) => DNS_LABEL.test(label))) {
    throw new ValidationError(field, `${JSON.stringify(value)} is not a valid DNS name (wildcards are not issued)`);
  }
  return name;
}

function checkIpAddress(value: string, field: string): string {
  if (isIP(value) === 0) throw new ValidationError(field, `${JSON.stringify(value)} is not an IP address`);
  return value;
}
