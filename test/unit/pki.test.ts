// Certificates as issued: extensions, key usages, lifetimes, serials; the roles extension; the
// identity read back from a client certificate.
import '../../src/pki/keys'; // @peculiar/x509 setup

import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import * as asn1js from 'asn1js';
import * as x509 from '@peculiar/x509';

import { ValidationError } from '../../src/errors';
import {
  CertificateIdentityError,
  CLOCK_SKEW_MS,
  createCa,
  decodeRoles,
  encodeRoles,
  identityFromCertificate,
  issueClientCertificate,
  issueServerCertificate,
  ROLES_EXTENSION_OID,
  type CertificateAuthority,
} from '../../src/pki';
import { peerCertificateOf, peerIdentityOf, type CallWithAuthContext } from '../../src/server/peer-identity';
import { craftCertificate } from '../helpers/pki';

const DAY = 86_400_000;
let ca: CertificateAuthority;

function days(from: Date, to: Date): number {
  return (to.getTime() - from.getTime()) / DAY;
}

function node(cert: x509.X509Certificate): NodeX509Certificate {
  return new NodeX509Certificate(Buffer.from(cert.rawData));
}

before(async () => {
  ca = await createCa();
});

describe('createCa', () => {
  it('is a self-signed CA limited to issuing leaves (cA, pathLen 0, keyCertSign+cRLSign, critical)', async () => {
    const cert = ca.certificate;
    assert.equal(cert.subject, 'CN=jobworker CA');
    assert.equal(cert.issuer, cert.subject);
    assert.ok(await cert.isSelfSigned());
    const basic = cert.getExtension(x509.BasicConstraintsExtension)!;
    assert.deepEqual([basic.ca, basic.pathLength, basic.critical], [true, 0, true]);
    const usage = cert.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(usage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.equal(usage.critical, true);
    assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    assert.equal(cert.getExtension(x509.ExtendedKeyUsageExtension), null);
  });

  it('uses ECDSA P-256 with SHA-256 by default, P-384 with SHA-384 on request', async () => {
    assert.equal(node(ca.certificate).publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual(ca.certificate.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } });
    const ca384 = await createCa({ keyAlgorithm: 'P-384' });
    assert.equal(node(ca384.certificate).publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.deepEqual(ca384.certificate.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-384' } });
    const leaf = await issueClientCertificate(ca384, { name: 'x', roles: ['reader'] });
    assert.ok(node(leaf.certificate).verify(node(ca384.certificate).publicKey));
  });

  it('lives 10 years, starting 5 minutes ago', () => {
    const now = Date.now();
    assert.ok(Math.abs(now - CLOCK_SKEW_MS - ca.certificate.notBefore.getTime()) < 60_000);
    assert.ok(Math.abs(days(new Date(now), ca.certificate.notAfter) - 3650) < 0.01);
  });

  it('has a random, positive 128-bit serial number', async () => {
    const other = await createCa();
    for (const serial of [ca.certificate.serialNumber, other.certificate.serialNumber]) {
      assert.match(serial, /^[4-7][0-9a-f]{31}$/i);
    }
    assert.notEqual(ca.certificate.serialNumber, other.certificate.serialNumber);
  });

  it('exports the private key as PKCS#8 PEM', () => {
    assert.match(ca.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  });
});

describe('issueServerCertificate', () => {
  it('is a leaf for serverAuth with the SANs asked for, signed by the CA, for 1 year', async () => {
    const issued = await issueServerCertificate(ca, { dnsNames: ['Jobs.Example.org', 'localhost'], ipAddresses: ['127.0.0.1', '::1'] });
    const cert = issued.certificate;
    assert.equal(cert.subject, 'CN=jobs.example.org');
    assert.equal(cert.issuer, ca.certificate.subject);
    const basic = cert.getExtension(x509.BasicConstraintsExtension)!;
    assert.deepEqual([basic.ca, basic.critical], [false, true]);
    const usage = cert.getExtension(x509.KeyUsagesExtension)!;
    assert.deepEqual([usage.usages, usage.critical], [x509.KeyUsageFlags.digitalSignature, true]);
    assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth]);
    assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [
      { type: 'dns', value: 'jobs.example.org' },
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
      { type: 'ip', value: '::1' },
    ]);
    assert.equal(
      cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId,
      ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    assert.equal(cert.getExtension(ROLES_EXTENSION_OID), null);
    assert.ok(Math.abs(days(new Date(), cert.notAfter) - 365) < 0.01);
    const n = node(cert);
    assert.ok(n.verify(node(ca.certificate).publicKey));
    assert.ok(n.checkIssued(node(ca.certificate)));
    assert.equal(n.checkHost('jobs.example.org'), 'jobs.example.org');
    assert.equal(n.checkIP('::1'), '::1');
  });

  it('keeps a common name with DN syntax in it as one CN (names are never parsed from strings)', async () => {
    const issued = await issueServerCertificate(ca, { dnsNames: ['a.example'], commonName: 'x, OU=admin' });
    assert.deepEqual(issued.certificate.subjectName.getField('CN'), ['x, OU=admin']);
    assert.deepEqual(issued.certificate.subjectName.getField('OU'), []);
  });

  it('refuses bad input with the field named', async () => {
    const cases: Array<[Parameters<typeof issueServerCertificate>[1], RegExp]> = [
      [{}, /^dnsNames: .*at least one/],
      [{ dnsNames: ['bad_name.example'] }, /^dnsNames\[0\]: .*not a valid DNS name/],
      [{ dnsNames: ['*.example.org'] }, /^dnsNames\[0\]: .*wildcards/],
      [{ dnsNames: ['-a.example'] }, /^dnsNames\[0\]/],
      [{ ipAddresses: ['300.1.1.1'] }, /^ipAddresses\[0\]: .*not an IP address/],
      [{ dnsNames: ['a.example'], validityDays: 0 }, /^validityDays: /],
      [{ dnsNames: ['a.example'], validityDays: 1.5 }, /^validityDays: /],
      [{ dnsNames: ['a.example'], validityDays: 4000 }, /^validityDays: .*outlive its CA/],
      [{ dnsNames: ['a.example'], notBefore: new Date(Date.now()), notAfter: new Date(Date.now() - 1) }, /^notAfter: /],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(issueServerCertificate(ca, options), (error: unknown) => {
        assert.ok(error instanceof ValidationError, String(error));
        assert.match(error.message, message);
        return true;
      });
    }
  });
});

describe('issueClientCertificate', () => {
  it('is a leaf for clientAuth, CN = name, roles in a non-critical extension, for 90 days', async () => {
    const issued = await issueClientCertificate(ca, { name: 'alice@example.org', roles: ['writer', 'reader', 'writer'] });
    const cert = issued.certificate;
    assert.equal(cert.subject, 'CN=alice@example.org');
    assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.clientAuth]);
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)!.ca, false);
    assert.equal(cert.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(cert.getExtension(x509.SubjectAlternativeNameExtension), null);
    const roles = cert.getExtensions(ROLES_EXTENSION_OID);
    assert.equal(roles.length, 1);
    assert.equal(roles[0]!.critical, false);
    // SEQUENCE { UTF8String "writer", UTF8String "reader" }, duplicates dropped.
    assert.equal(Buffer.from(roles[0]!.value).toString('hex'), '3010' + '0c06' + Buffer.from('writer').toString('hex') + '0c06' + Buffer.from('reader').toString('hex'));
    assert.ok(Math.abs(days(new Date(), cert.notAfter) - 90) < 0.01);
    assert.ok(node(cert).verify(node(ca.certificate).publicKey));
  });

  it('honours validityDays, notBefore and notAfter', async () => {
    const start = new Date(Date.now() - 10 * DAY);
    const a = await issueClientCertificate(ca, { name: 'a', roles: ['reader'], validityDays: 365 });
    assert.ok(Math.abs(days(new Date(), a.certificate.notAfter) - 365) < 0.01);
    const b = await issueClientCertificate(ca, { name: 'b', roles: ['reader'], notBefore: start, validityDays: 3 });
    assert.equal(b.certificate.notBefore.getTime(), Math.floor(start.getTime() / 1000) * 1000);
    assert.equal(days(b.certificate.notBefore, b.certificate.notAfter), 3);
  });

  it('refuses names that are not plain identifiers, and unknown or missing roles', async () => {
    for (const name of ['', 'bob, OU=admin', 'CN=bob', 'a b', 'x'.repeat(65), '-lead', 'tab\there', 'é']) {
      await assert.rejects(issueClientCertificate(ca, { name, roles: ['reader'] }), /^ValidationError: name: /);
    }
    await assert.rejects(issueClientCertificate(ca, { name: 'bob', roles: [] }), /roles: at least one role/);
    await assert.rejects(
      issueClientCertificate(ca, { name: 'bob', roles: ['root' as 'admin'] }),
      /roles: unknown role "root"; known roles: reader, writer, admin/,
    );
  });
});

describe('roles extension', () => {
  it('has an OID whose arcs are all below 2^28 and that survives DER round trips', async () => {
    for (const arc of ROLES_EXTENSION_OID.split('.')) assert.ok(Number(arc) < 2 ** 28, arc);
    const der = new asn1js.ObjectIdentifier({ value: ROLES_EXTENSION_OID }).toBER();
    assert.equal(asn1js.fromBER(der).result.valueBlock.toString(), ROLES_EXTENSION_OID);
    const issued = await issueClientCertificate(ca, { name: 'carol', roles: ['admin'] });
    const reparsed = new x509.X509Certificate(issued.certificate.rawData);
    assert.ok(reparsed.getExtension(ROLES_EXTENSION_OID));
  });

  it('encodes as DER SEQUENCE OF UTF8String and decodes only exactly that', () => {
    assert.equal(Buffer.from(encodeRoles([])).toString('hex'), '3000');
    assert.deepEqual(decodeRoles(encodeRoles(['admin', 'reader'])), ['admin', 'reader']);
    const utf8 = Buffer.from(encodeRoles(['admin']));
    const bad: Array<[string, Buffer]> = [
      ['PrintableString item', Buffer.from('3007130561646d696e', 'hex')],
      ['trailing bytes', Buffer.concat([utf8, Buffer.from([0])])],
      ['SET instead of SEQUENCE', Buffer.from('3107' + '0c0561646d696e', 'hex')],
      ['indefinite length (BER)', Buffer.from('30800c0561646d696e0000', 'hex')],
      ['not ASN.1', Buffer.from('admin')],
    ];
    for (const [what, der] of bad) assert.throws(() => decodeRoles(der), Error, what);
  });
});

describe('identityFromCertificate', () => {
  it('reads the CN and the known roles', async () => {
    const issued = await issueClientCertificate(ca, { name: 'dave', roles: ['admin', 'reader'] });
    const identity = identityFromCertificate(Buffer.from(issued.certificate.rawData));
    assert.equal(identity.name, 'dave');
    assert.deepEqual(identity.roles, ['admin', 'reader']);
    assert.deepEqual(identity.ignoredRoles, []);
    assert.equal(identity.serialNumber, issued.certificate.serialNumber);
    assert.deepEqual(identity, identityFromCertificate(issued.certificate));
  });

  it('ignores subject attributes other than CN: OU=admin, O=admin, title=admin grant nothing', async () => {
    const forged = await craftCertificate({
      subject: [{ CN: ['mallory'] }, { OU: ['admin'] }, { O: ['admin'] }, { '2.5.4.12': ['admin'] }],
      issuer: ca,
      roles: ['reader'],
    });
    assert.deepEqual(identityFromCertificate(forged.certificate).roles, ['reader']);
    const none = await craftCertificate({ subject: [{ CN: ['eve'] }, { OU: ['admin', 'writer'] }], issuer: ca });
    assert.deepEqual(identityFromCertificate(none.certificate).roles, []);
  });

  it('ignores unknown roles and reports them', async () => {
    const cert = await craftCertificate({ subject: [{ CN: ['f'] }], issuer: ca, roles: ['reader', 'Admin', 'root', 'root'] });
    const identity = identityFromCertificate(cert.certificate);
    assert.deepEqual([identity.roles, identity.ignoredRoles], [['reader'], ['Admin', 'root']]);
  });

  it('rejects certificates that cannot name a client', async () => {
    const cases: Array<[Parameters<typeof craftCertificate>[0], RegExp]> = [
      [{ subject: [{ O: ['jobworker'] }], issuer: ca, roles: ['admin'] }, /no commonName/],
      [{ subject: [{ CN: ['a', 'b'] }], issuer: ca, roles: ['admin'] }, /more than one commonName/],
      [{ subject: [{ CN: ['a'] }], issuer: ca, roles: ['admin'], ca: true }, /CA certificate/],
      [{ subject: [{ CN: ['a'] }], issuer: ca, roles: ['admin'], extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth] }, /clientAuth/],
      [{ subject: [{ CN: ['a'] }], issuer: ca, roles: ['admin'], rolesCount: 2 }, /more than once/],
      [{ subject: [{ CN: ['a'] }], issuer: ca, rolesDer: Buffer.from('3007130561646d696e', 'hex') }, /malformed/],
      [{ subject: [{ CN: [' padded'] }], issuer: ca, roles: ['admin'] }, /printable/],
    ];
    for (const [options, message] of cases) {
      const cert = await craftCertificate(options);
      assert.throws(() => identityFromCertificate(cert.certificate), (error: unknown) => {
        assert.ok(error instanceof CertificateIdentityError, String(error));
        assert.match(error.message, message);
        return true;
      });
    }
    assert.throws(() => identityFromCertificate(Buffer.from('not a certificate')), /not a parsable X\.509 certificate/);
  });
});

describe('peerIdentityOf / peerCertificateOf', () => {
  function callWith(der: Buffer | undefined, transportSecurityType = 'ssl'): CallWithAuthContext {
    const certificate = der === undefined ? undefined : node(new x509.X509Certificate(der));
    return {
      getAuthContext: () => ({
        transportSecurityType,
        ...(der === undefined
          ? {}
          : { sslPeerCertificate: { raw: der, fingerprint256: certificate!.fingerprint256 } as import('node:tls').PeerCertificate }),
      }),
    };
  }

  it('reads the verified peer certificate of the call', async () => {
    const issued = await issueClientCertificate(ca, { name: 'erin', roles: ['writer'] });
    const der = Buffer.from(issued.certificate.rawData);
    assert.deepEqual(peerCertificateOf(callWith(der)), der);
    assert.deepEqual(peerIdentityOf(callWith(der)).roles, ['writer']);
    assert.equal(peerCertificateOf(callWith(undefined)), null);
    assert.equal(peerCertificateOf({ getAuthContext: () => ({}) }), null);
  });

  it('refuses calls without a verified certificate, and calls made after the certificate expired', async () => {
    assert.throws(() => peerIdentityOf({ getAuthContext: () => ({}) }), /no verified client certificate/);
    assert.throws(() => peerIdentityOf({ getAuthContext: () => null }), /no verified client certificate/);
    const issued = await issueClientCertificate(ca, { name: 'frank', roles: ['reader'], validityDays: 1 });
    const call = callWith(Buffer.from(issued.certificate.rawData));
    assert.equal(peerIdentityOf(call).name, 'frank');
    assert.throws(() => peerIdentityOf(call, new Date(Date.now() + 2 * DAY)), /expired on/);
  });
});
