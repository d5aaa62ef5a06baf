// Who a client certificate speaks for, and with which roles. Pure: no I/O, no clock.
//
// identity = the subject's commonName (exactly one CN; a certificate without one is refused);
// roles    = the roles extension (see roles.ts) and nothing else: no other subject attribute (OU,
//            O, title…) and no SAN is ever read for roles, so "OU=admin" grants nothing.
// Unknown role strings are ignored (a newer CA may issue roles this server does not know; ignoring
// them grants nothing) and reported in `ignoredRoles` so the server can log them.
import './keys'; // sets up @peculiar/x509 before use

import * as x509 from '@peculiar/x509';

import { JobworkerError } from '../errors';
import { decodeRoles, isRole, ROLES_EXTENSION_OID, type Role } from './roles';

const COMMON_NAME_OID = '2.5.4.3';

export interface CertificateIdentity {
  /** The subject CN: the owner of the jobs this client starts. */
  name: string;
  /** Known roles from the roles extension, deduplicated, in certificate order. */
  roles: Role[];
  /** Role strings in the extension that this server does not know (ignored). */
  ignoredRoles: string[];
  /** Hex serial number, for audit logs. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** The certificate cannot identify a client (gRPC UNAUTHENTICATED). */
export class CertificateIdentityError extends JobworkerError {
  constructor(reason: string) {
    super('unauthenticated', `client certificate rejected: ${reason}`);
  }
}

/**
 * Reads the identity from a client certificate that TLS has ALREADY verified (chain, validity).
 * Accepts DER bytes or a parsed certificate. Throws CertificateIdentityError.
 */
export function identityFromCertificate(certificate: Uint8Array | ArrayBuffer | x509.X509Certificate): CertificateIdentity {
  const cert = parse(certificate);

  const names = cert.subjectName.getField(COMMON_NAME_OID);
  if (names.length === 0) throw new CertificateIdentityError('the subject has no commonName (CN), which is the identity');
  if (names.length > 1) throw new CertificateIdentityError('the subject has more than one commonName (CN)');
  const name = names[0]!;
  // eslint-disable-next-line no-control-regex
  if (name.length === 0 || name.length > 64 || /[\u0000-\u001f\u007f-\u009f]/.test(name) || name.trim() !== name) {
    throw new CertificateIdentityError('the subject commonName must be 1-64 printable characters');
  }

  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (basic?.ca === true) throw new CertificateIdentityError('a CA certificate cannot be used as a client certificate');
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku === null || !eku.usages.includes(x509.ExtendedKeyUsage.clientAuth)) {
    throw new CertificateIdentityError('the certificate is not for client authentication (extended key usage clientAuth)');
  }

  const extensions = cert.getExtensions(ROLES_EXTENSION_OID);
  if (extensions.length > 1) throw new CertificateIdentityError('the roles extension appears more than once');
  let values: string[] = [];
  if (extensions.length === 1) {
    try {
      values = decodeRoles(extensions[0]!.value);
    } catch (error) {
      throw new CertificateIdentityError(`the roles extension is malformed (${(error as Error).message})`);
    }
  }
  const roles: Role[] = [];
  const ignoredRoles: string[] = [];
  for (const value of values) {
    if (isRole(value)) {
      if (!roles.includes(value)) roles.push(value);
    } else if (!ignoredRoles.includes(value)) {
      ignoredRoles.push(value);
    }
  }
  return { name, roles, ignoredRoles, serialNumber: cert.serialNumber, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

function parse(certificate: Uint8Array | ArrayBuffer | x509.X509Certificate): x509.X509Certificate {
  if (certificate instanceof x509.X509Certificate) return certificate;
  try {
    return new x509.X509Certificate(certificate);
  } catch (error) {
    throw new CertificateIdentityError(`not a parsable X.509 certificate (${(error as Error).message})`);
  }
}
