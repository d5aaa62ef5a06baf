// The quick client TLS check (src/pki/quick-load.ts) that job-cli connects with: on every kind of
// file set, it passes only what the full loader passes (so it never lets through what the full
// check would refuse), it does pass a good set (or it would never save anything), and when it is
// unsure the connection falls back to the full loader's error.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';

import { StatusCode } from '../../src/client/basics';
import { connectionCredentials } from '../../src/client/credentials';
import { createCa, issueServerCertificate, loadClientTlsMaterial, TlsMaterialError, type TlsFilePaths, type TlsMaterial } from '../../src/pki';
import { quickLoadClientTls } from '../../src/pki/quick-load';
import { craftCertificate, createTestPki, type TestPki } from '../helpers/pki';

const DAY = 86_400_000;
let dir: string;
let pki: TestPki;
let good: TlsFilePaths;
const cases: { name: string; paths: TlsFilePaths; now?: Date }[] = [];

function write(name: string, text: string | Buffer, mode = 0o600): string {
  const file = path.join(dir, name);
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  return file;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-quick-tls-'));
  pki = await createTestPki();
  good = await pki.client({ name: 'alice', roles: ['reader'] }, 'alice');
  const other = await pki.client({ name: 'bob', roles: ['writer'] }, 'bob');
  const otherCa = await createCa({ commonName: 'other CA' });
  const server = await pki.write(await issueServerCertificate(pki.ca, { dnsNames: ['localhost'] }), 'server');
  const expiredCa = await craftCertificate({ subject: [{ CN: ['old CA'] }], ca: true, notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
  const noRoles = await craftCertificate({ subject: [{ CN: ['carol'] }], issuer: pki.ca });
  const serverAuthOnly = await craftCertificate({ subject: [{ CN: ['dave'] }], issuer: pki.ca, roles: ['reader'], extendedKeyUsages: ['1.3.6.1.5.5.7.3.1'] });
  const soonExpiring = await craftCertificate({ subject: [{ CN: ['erin'] }], issuer: pki.ca, roles: ['reader'], notAfter: new Date(Date.now() + 3 * DAY) });
  const encrypted = createPrivateKey(readFileSync(good.privateKeyPath)).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' });
  cases.push(
    { name: 'a good set', paths: good },
    { name: 'a key readable by others', paths: { ...good, privateKeyPath: write('open-key.pem', readFileSync(good.privateKeyPath), 0o644) } },
    { name: 'a CA bundle with an expired extra CA', paths: { ...good, caPath: write('bundle.pem', `${readFileSync(good.caPath, 'utf8')}${expiredCa.certificatePem}\n`, 0o644) } },
    { name: 'a certificate expiring in 3 days', paths: { ...good, certificatePath: write('soon.pem', soonExpiring.certificatePem), privateKeyPath: write('soon-key.pem', soonExpiring.privateKeyPem) } },
    { name: 'a certificate without roles', paths: { ...good, certificatePath: write('noroles.pem', noRoles.certificatePem), privateKeyPath: write('noroles-key.pem', noRoles.privateKeyPem) } },
    { name: 'an expired certificate', paths: good, now: new Date(Date.now() + 100 * DAY) },
    { name: 'a certificate not valid yet', paths: good, now: new Date(Date.now() - DAY) },
    { name: 'another certificate\'s key', paths: { ...good, privateKeyPath: other.privateKeyPath } },
    { name: 'another CA', paths: { ...good, caPath: write('other-ca.pem', otherCa.certificatePem, 0o644) } },
    { name: 'a server certificate', paths: { ...good, certificatePath: server.certificatePath, privateKeyPath: server.privateKeyPath } },
    { name: 'a certificate for serverAuth only', paths: { ...good, certificatePath: write('dave.pem', serverAuthOnly.certificatePem), privateKeyPath: write('dave-key.pem', serverAuthOnly.privateKeyPem) } },
    { name: 'the CA as the client certificate', paths: { ...good, certificatePath: good.caPath, privateKeyPath: write('ca-key.pem', pki.ca.privateKeyPem) } },
    { name: 'a leaf as the CA', paths: { ...good, caPath: good.certificatePath } },
    { name: 'an encrypted key', paths: { ...good, privateKeyPath: write('encrypted.pem', encrypted) } },
    { name: 'garbage', paths: { ...good, certificatePath: write('garbage.pem', 'hello\n') } },
    { name: 'a missing file', paths: { ...good, caPath: path.join(dir, 'nope.pem') } },
  );
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.remove();
});

describe('the quick client TLS check', () => {
  it('passes only what the full loader passes, with the same warnings but the roles one', async () => {
    const passed: string[] = [];
    for (const { name, paths, now } of cases) {
      const quick = await quickLoadClientTls(paths, now);
      let full: TlsMaterial;
      try {
        full = await loadClientTlsMaterial(paths, now === undefined ? {} : { now });
      } catch (error) {
        assert.ok(error instanceof TlsMaterialError, `${name}: ${String(error)}`);
        assert.equal(quick, undefined, `${name}: the full loader refuses it (${error.message}), the quick check must not pass it`);
        continue;
      }
      if (quick === undefined) continue; // unsure is allowed: the full loader decides
      passed.push(name);
      assert.deepEqual(quick.warnings, full.warnings.filter((w) => !/carries no known role/.test(w)), name);
      assert.deepEqual(quick.certificateDer, Buffer.from(full.certificate.rawData), name);
    }
    // Each of these is common; if the quick check gave up on them it would save nothing.
    assert.deepEqual(passed, ['a good set', 'a key readable by others', 'a CA bundle with an expired extra CA', 'a certificate expiring in 3 days', 'a certificate without roles']);
  });

  it('a connection falls back to the full loader, whose error names the file and the fix', async () => {
    const mismatched = cases.find((c) => c.name === 'another certificate\'s key')!.paths;
    await assert.rejects(connectionCredentials(mismatched), (error: unknown) => {
      assert.ok(error instanceof TlsMaterialError);
      assert.equal(error.problem, 'key-mismatch');
      assert.match(error.message, new RegExp(`client private key ${mismatched.privateKeyPath}: does not match the certificate`));
      return true;
    });
    const quick = await connectionCredentials(good);
    assert.equal(quick.warnings.length, 0);
  });

  it('StatusCode (loaded without gRPC) has grpc-js\'s numbers', () => {
    const fromGrpc = Object.fromEntries(Object.entries(grpcStatus).filter(([name]) => Number.isNaN(Number(name))));
    assert.deepEqual({ ...StatusCode }, fromGrpc);
  });
});
