// Writing PEM files (modes, no silent overwrite) and loading them back (every refusal names the
// file and says why).
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  createCa,
  FileExistsError,
  issueClientCertificate,
  issueServerCertificate,
  loadCa,
  loadClientTlsMaterial,
  loadServerTlsMaterial,
  TlsMaterialError,
  writePemFile,
  writePemFiles,
  type CertificateAuthority,
  type TlsFilePaths,
  type TlsMaterialProblem,
} from '../../src/pki';
import { loadChannelCredentials } from '../../src/client/credentials';
import { importSigningKey } from '../../src/pki/keys';
import { craftCertificate, createTestPki, type TestPki } from '../helpers/pki';

const DAY = 86_400_000;
let dir: string;
let pki: TestPki;
let otherCa: CertificateAuthority;
let server: TlsFilePaths;
let client: TlsFilePaths;
let seq = 0;

function file(name: string): string {
  return path.join(dir, `${seq++}-${name}`);
}

function modeOf(p: string): number {
  return statSync(p).mode & 0o777;
}

async function expectProblem(
  promise: Promise<unknown>,
  problem: TlsMaterialProblem,
  file: string,
  message: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TlsMaterialError, String(error));
    assert.equal(error.problem, problem, error.message);
    assert.equal(error.file, file);
    assert.ok(error.message.includes(file), `the message names the file: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-pki-files-'));
  pki = await createTestPki();
  otherCa = await createCa({ commonName: 'other CA' });
  server = await pki.server(undefined, 'server');
  client = await pki.client({ name: 'alice', roles: ['reader'] }, 'client');
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.remove();
});

describe('writePemFiles', () => {
  it('creates the key 0600 and the certificate 0644 (under the usual umask)', async () => {
    const issued = await issueClientCertificate(pki.ca, { name: 'w', roles: ['reader'] });
    const paths = { certificatePath: file('cert.pem'), privateKeyPath: file('key.pem') };
    const umask = process.umask(0o022);
    try {
      await writePemFiles(issued, paths);
    } finally {
      process.umask(umask);
    }
    assert.equal(modeOf(paths.privateKeyPath), 0o600);
    assert.equal(modeOf(paths.certificatePath), 0o644);
    assert.equal(readFileSync(paths.certificatePath, 'utf8'), issued.certificatePem.endsWith('\n') ? issued.certificatePem : `${issued.certificatePem}\n`);
    assert.equal(createPrivateKey(readFileSync(paths.privateKeyPath)).asymmetricKeyType, 'ec');
  });

  it('keeps the key 0600 even with a permissive umask', async () => {
    const key = file('key.pem');
    const umask = process.umask(0);
    try {
      await writePemFile(key, pki.ca.privateKeyPem);
    } finally {
      process.umask(umask);
    }
    assert.equal(modeOf(key), 0o600);
  });

  it('refuses to overwrite either file, and then writes nothing', async () => {
    const issued = await issueClientCertificate(pki.ca, { name: 'w', roles: ['reader'] });
    const paths = { certificatePath: file('cert.pem'), privateKeyPath: file('key.pem') };
    writeFileSync(paths.certificatePath, 'old certificate');
    await assert.rejects(writePemFiles(issued, paths), (error: unknown) => {
      assert.ok(error instanceof FileExistsError);
      assert.equal(error.kind, 'already-exists');
      assert.match(error.message, /already exists; refusing to overwrite/);
      return true;
    });
    assert.equal(readFileSync(paths.certificatePath, 'utf8'), 'old certificate');
    assert.throws(() => statSync(paths.privateKeyPath), /ENOENT/);
  });

  it('does not write through a symlink planted at the key path', async () => {
    const target = file('target');
    const link = file('key-link.pem');
    symlinkSync(target, link);
    await assert.rejects(writePemFile(link, pki.ca.privateKeyPem), FileExistsError);
    assert.throws(() => statSync(target), /ENOENT/);
  });

  it('replaces atomically when asked, with the new mode, leaving no temporary file', async () => {
    const sub = file('dir');
    mkdirSync(sub);
    const key = path.join(sub, 'key.pem');
    writeFileSync(key, 'old key', { mode: 0o644 });
    chmodSync(key, 0o644);
    await writePemFile(key, pki.ca.privateKeyPem, { overwrite: true });
    assert.equal(modeOf(key), 0o600);
    assert.equal(readFileSync(key, 'utf8'), pki.ca.privateKeyPem);
    assert.deepEqual(readdirSync(sub), ['key.pem']);
  });

  it('creates missing directories 0700', async () => {
    const nested = path.join(file('new'), 'deeper');
    await writePemFile(path.join(nested, 'key.pem'), pki.ca.privateKeyPem);
    assert.equal(modeOf(nested), 0o700);
  });
});

describe('loadServerTlsMaterial / loadClientTlsMaterial', () => {
  it('loads a good set, normalised, with its identity for a client', async () => {
    const s = await loadServerTlsMaterial(server);
    assert.equal(s.use, 'server');
    assert.equal(s.certificate.subject, 'CN=localhost');
    assert.match(s.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.deepEqual(s.warnings, []);
    const c = await loadClientTlsMaterial(client);
    assert.equal(c.identity?.name, 'alice');
    assert.deepEqual(c.identity?.roles, ['reader']);
  });

  it('names a missing file', async () => {
    const missing = path.join(dir, 'nope.pem');
    await expectProblem(loadServerTlsMaterial({ ...server, caPath: missing }), 'missing', missing, /^CA certificate .*: file not found$/);
    await expectProblem(loadServerTlsMaterial({ ...server, certificatePath: missing }), 'missing', missing, /^server certificate /);
    await expectProblem(loadClientTlsMaterial({ ...client, privateKeyPath: missing }), 'missing', missing, /^client private key /);
  });

  it('names an unreadable file', async () => {
    await expectProblem(loadServerTlsMaterial({ ...server, certificatePath: dir }), 'unreadable', dir, /is a directory/);
    if (process.getuid?.() !== 0) {
      const locked = file('locked.pem');
      writeFileSync(locked, readFileSync(server.certificatePath), { mode: 0o000 });
      await expectProblem(loadServerTlsMaterial({ ...server, certificatePath: locked }), 'unreadable', locked, /not readable/);
    }
  });

  it('names a file that is not PEM, or not a certificate / key', async () => {
    const garbage = file('garbage.pem');
    writeFileSync(garbage, 'hello\n');
    await expectProblem(loadServerTlsMaterial({ ...server, certificatePath: garbage }), 'not-pem', garbage, /no PEM certificate/);
    await expectProblem(loadServerTlsMaterial({ ...server, privateKeyPath: garbage }), 'not-pem', garbage, /no PEM private key/);
    const der = file('cert.der');
    writeFileSync(der, Buffer.from(pki.ca.certificate.rawData));
    await expectProblem(loadServerTlsMaterial({ ...server, caPath: der }), 'not-pem', der, /no PEM certificate/);
    const broken = file('broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nMIIBkzCCATmgAwIBAgIQ\n-----END CERTIFICATE-----\n');
    await expectProblem(loadServerTlsMaterial({ ...server, certificatePath: broken }), 'invalid', broken, /not a valid X\.509 certificate/);
    const keyAsCert = file('key-as-cert.pem');
    writeFileSync(keyAsCert, readFileSync(server.privateKeyPath));
    await expectProblem(loadServerTlsMaterial({ ...server, certificatePath: keyAsCert }), 'not-pem', keyAsCert, /no PEM certificate/);
  });

  it('refuses an encrypted private key', async () => {
    const encrypted = file('encrypted-key.pem');
    writeFileSync(
      encrypted,
      createPrivateKey(readFileSync(server.privateKeyPath)).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }),
    );
    await expectProblem(loadServerTlsMaterial({ ...server, privateKeyPath: encrypted }), 'encrypted-key', encrypted, /is encrypted/);
  });

  it('names an expired certificate, with the date and the command to renew it', async () => {
    const later = new Date(Date.now() + 400 * DAY);
    await expectProblem(
      loadServerTlsMaterial(server, { now: later }),
      'expired',
      server.certificatePath,
      /^server certificate .*: expired on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; issue a new one with `job-worker pki server \.\.\.`$/,
    );
    await expectProblem(
      loadClientTlsMaterial(client, { now: new Date(Date.now() + 100 * DAY) }),
      'expired',
      client.certificatePath,
      /client certificate .*: expired on .*; issue a new one with `job-worker pki client \.\.\.`/,
    );
    // The channel-credentials loader surfaces the same error.
    await assert.rejects(loadChannelCredentials(client, { now: new Date(Date.now() + 100 * DAY) }), /expired on/);
  });

  it('names a certificate that is not valid yet', async () => {
    await expectProblem(
      loadServerTlsMaterial(server, { now: new Date(Date.now() - DAY) }),
      'not-yet-valid',
      server.certificatePath,
      /is not valid until .*check this host's clock/,
    );
  });

  it('names an expired CA', async () => {
    const shortCa = await craftCertificate({
      subject: [{ CN: ['short-lived CA'] }],
      ca: true,
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() + 200 * DAY),
    });
    const authority: CertificateAuthority = {
      ...shortCa,
      privateKey: (await importSigningKey(shortCa.privateKeyPem)).key,
      keyAlgorithm: 'P-256',
    };
    const shortPki = await createTestPki(authority);
    try {
      // A leaf that outlives its CA (the PKI refuses to issue one; an external CA may not).
      const leaf = await craftCertificate({
        subject: [{ CN: ['localhost'] }],
        issuer: authority,
        extendedKeyUsages: ['1.3.6.1.5.5.7.3.1'],
        notAfter: new Date(Date.now() + 300 * DAY),
      });
      const paths = await shortPki.write(leaf, 'leaf');
      await expectProblem(
        loadServerTlsMaterial(paths, { now: new Date(Date.now() + 250 * DAY) }),
        'expired',
        paths.caPath,
        /^CA certificate .*: expired on .*; create one with `job-worker pki ca \.\.\.`$/,
      );
    } finally {
      shortPki.remove();
    }
  });

  it('names a key that does not match the certificate', async () => {
    await expectProblem(
      loadServerTlsMaterial({ ...server, privateKeyPath: client.privateKeyPath }),
      'key-mismatch',
      client.privateKeyPath,
      /^server private key .*: does not match the certificate in /,
    );
  });

  it('names a certificate not signed by the CA', async () => {
    const foreign = await issueServerCertificate(otherCa, { dnsNames: ['localhost'] });
    const paths = await pki.write(foreign, 'foreign-server');
    await expectProblem(
      loadServerTlsMaterial(paths),
      'untrusted',
      paths.certificatePath,
      /is not signed by the CA in .*certificate issuer: CN=other CA; CA: CN=jobworker test CA/,
    );
  });

  it('a CA bundle that lacks the issuer is summed up, not listed whole', async () => {
    const foreign = await issueServerCertificate(otherCa, { dnsNames: ['localhost'] });
    const paths = await pki.write(foreign, 'foreign-server-bundle');
    const cas = await Promise.all(Array.from({ length: 40 }, (_, i) => createCa({ commonName: `bundle CA ${i}` })));
    const bundle = path.join(path.dirname(paths.caPath), 'bundle.pem');
    writeFileSync(bundle, cas.map((ca) => ca.certificatePem).join(''));
    await expectProblem(
      loadServerTlsMaterial({ ...paths, caPath: bundle }),
      'untrusted',
      paths.certificatePath,
      /is not signed by any of the 40 CA certificates in .*bundle\.pem \(certificate issuer: CN=other CA; CAs there: "CN=bundle CA 0", "CN=bundle CA 1" and 38 more; a system bundle\? It needs the CA that issued the certificate\)$/,
    );
  });

  it('names a certificate of the wrong kind (EKU) for its use', async () => {
    await expectProblem(
      loadServerTlsMaterial(client),
      'wrong-usage',
      client.certificatePath,
      /is for clientAuth, not serverAuth: it cannot be used as a server certificate/,
    );
    await expectProblem(
      loadClientTlsMaterial(server),
      'wrong-usage',
      server.certificatePath,
      /is for serverAuth, not clientAuth: it cannot be used as a client certificate/,
    );
    const noEku = await craftCertificate({ subject: [{ CN: ['x'] }], issuer: pki.ca, extendedKeyUsages: [] });
    const paths = await pki.write(noEku, 'no-eku');
    await expectProblem(loadClientTlsMaterial(paths), 'wrong-usage', paths.certificatePath, /is for nothing, not clientAuth/);
  });

  it('refuses a CA file holding a non-CA certificate', async () => {
    await expectProblem(
      loadServerTlsMaterial({ ...server, caPath: client.certificatePath }),
      'not-a-ca',
      client.certificatePath,
      /"CN=alice" is not a CA certificate/,
    );
  });

  it('refuses a client certificate without an identity (no CN)', async () => {
    const anonymous = await craftCertificate({ subject: [{ O: ['x'] }], issuer: pki.ca, roles: ['admin'] });
    const paths = await pki.write(anonymous, 'anonymous');
    await expectProblem(loadClientTlsMaterial(paths), 'no-identity', paths.certificatePath, /no commonName/);
  });

  it('accepts a CA bundle (CA rotation), with a warning for an expired extra CA', async () => {
    const expiredCa = await craftCertificate({
      subject: [{ CN: ['retired CA'] }],
      ca: true,
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    const bundle = file('bundle.pem');
    writeFileSync(bundle, expiredCa.certificatePem + otherCa.certificatePem + pki.ca.certificatePem);
    const material = await loadServerTlsMaterial({ ...server, caPath: bundle });
    assert.equal(material.caCertificates.length, 3);
    assert.equal(material.warnings.length, 1);
    assert.match(material.warnings[0]!, /"CN=retired CA" expired on/);
  });

  it('warns about a key readable by others, a client without roles, and an imminent expiry', async () => {
    const loose = file('loose-key.pem');
    writeFileSync(loose, readFileSync(client.privateKeyPath), { mode: 0o644 });
    chmodSync(loose, 0o644);
    const noRoles = await craftCertificate({ subject: [{ CN: ['nobody'] }], issuer: pki.ca, notAfter: new Date(Date.now() + 30 * DAY) });
    const paths = await pki.write(noRoles, 'no-roles');
    const material = await loadClientTlsMaterial(paths, { now: new Date(noRoles.certificate.notAfter.getTime() - 2 * DAY) });
    assert.match(material.warnings.join('\n'), /carries no known role/);
    assert.match(material.warnings.join('\n'), /expires on .* \(in 2 days\); issue a new one with `job-worker pki client/);
    const looseMaterial = await loadClientTlsMaterial({ ...client, privateKeyPath: loose });
    assert.match(looseMaterial.warnings.join('\n'), /mode 0644 lets other users read it; chmod 600 it/);
  });
});

describe('loadCa', () => {
  it('loads a CA that can issue', async () => {
    const certificatePath = file('ca.pem');
    const privateKeyPath = file('ca-key.pem');
    await writePemFiles(pki.ca, { certificatePath, privateKeyPath });
    const ca = await loadCa({ certificatePath, privateKeyPath });
    const issued = await issueClientCertificate(ca, { name: 'from-loaded-ca', roles: ['admin'] });
    const loaded = await loadClientTlsMaterial(await pki.write(issued, 'from-loaded-ca'));
    assert.equal(loaded.identity?.name, 'from-loaded-ca');
  });

  it('refuses a leaf as CA, and a key that is not the CA key', async () => {
    await expectProblem(
      loadCa({ certificatePath: client.certificatePath, privateKeyPath: client.privateKeyPath }),
      'not-a-ca',
      client.certificatePath,
      /is not a CA certificate/,
    );
    const certificatePath = file('ca.pem');
    writeFileSync(certificatePath, pki.ca.certificatePem);
    await expectProblem(
      loadCa({ certificatePath, privateKeyPath: client.privateKeyPath }),
      'key-mismatch',
      client.privateKeyPath,
      /does not match the CA certificate/,
    );
  });
});
