// The jobworker roles certificate extension: its OID, its ASN.1 syntax, and the known roles.
//
//   JobworkerRoles ::= SEQUENCE OF UTF8String      -- DER, carried in a NON-critical extension
//
// OID: self-assigned from UUID 74d47fc6-3d75-47d1-ae91-bddfa5e52aa2 under Microsoft's arc for
// GUID-based OIDs (1.2.840.113556.1.8000.2554.A.B.C.D.E.F.G, the GUID cut into 16/16/16/16/16/24/24-
// bit arcs: no registration, uniqueness from the UUID). `.1` below that arc is this extension.
// Not the X.667 form 2.25.<UUID as one 128-bit arc> (2.25.155293806017275835376538568995169970850),
// although it is equally self-assignable, because a 128-bit arc is not portable:
//  - asn1js (under @peculiar/x509) encodes it but decodes it to "2.25.{hex}" and re-encodes that as
//    plain "2.25", silently (PeculiarVentures/ASN1.js#174): the issued extension would be lost;
//  - Go's crypto/x509 (cryptobyte readBase128Int) rejects arcs >= 2^31 and so the whole
//    certificate: Go programs such as grpcurl would fail to parse a client certificate carrying it;
//  - RFC 5280 only asks implementations to handle arcs up to 2^28-1. Every arc here is < 2^24.
// Non-critical because RFC 5280 obliges every verifier that does not know a critical extension to
// reject the certificate (OpenSSL, hence Node's TLS, does: X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION);
// ignoring it is safe, since a certificate without the extension grants no role at all.
import { AsnArray, AsnConvert, AsnPropTypes, AsnSequenceType } from '@peculiar/asn1-schema';

/** jobworker's private OID arc (GUID-derived, see above). */
export const JOBWORKER_OID_ARC = '1.2.840.113556.1.8000.2554.29908.32710.15733.18385.44689.12443557.15018658';
/** OID of the roles extension. */
export const ROLES_EXTENSION_OID = `${JOBWORKER_OID_ARC}.1`;

/** The roles the server knows. `writer` does not imply `reader` in the certificate; RBAC decides. */
export const ROLES = ['reader', 'writer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** ASN.1 schema for `SEQUENCE OF UTF8String` (decorator applied as a plain call: no decorator syntax). */
class RolesSyntax extends AsnArray<string> {}
AsnSequenceType({ itemType: AsnPropTypes.Utf8String })(RolesSyntax);

/** DER encoding of the extension value. */
export function encodeRoles(roles: readonly string[]): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new RolesSyntax([...roles])));
}

/**
 * Decodes the extension value. Throws unless `der` is exactly the DER of a SEQUENCE OF UTF8String:
 * other string types, trailing bytes and non-canonical (BER) encodings are refused, so that one
 * certificate cannot be read two ways by two parsers.
 */
export function decodeRoles(der: ArrayBuffer | ArrayBufferView): string[] {
  const bytes = toUint8Array(der);
  const parsed = AsnConvert.parse(bytes, RolesSyntax);
  const roles = [...parsed];
  const canonical = encodeRoles(roles);
  if (!Buffer.from(canonical).equals(Buffer.from(bytes))) {
    throw new Error('roles extension is not the DER encoding of a SEQUENCE OF UTF8String');
  }
  return roles;
}

function toUint8Array(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}
