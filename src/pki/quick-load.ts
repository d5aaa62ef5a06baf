// A client's TLS files checked with Node's own X.509 support only, for a client that connects once
// and exits (job-cli): the full loader (./load.ts) parses every extension with @peculiar/x509, which
// costs more start-up than the whole call it guards (issue 17). This check passes only files the
// full loader would pass too; whenever it is unsure (intermediates, an encrypted key, anything
// unexpected) it answers undefined and the caller runs the full loader, whose errors name the file,
// the problem and the fix. What it does not check the server still does in the handshake; the one
// thing it skips is the roles extension (the caller reads it on demand, see identity.ts).
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import type { TlsFilePaths } from './load';
import { day, expiryWarning, keyModeWarning, REMEDY } from './tls-warnings';

export interface QuickTlsMaterial {
  caPem: string;
  certificatePem: string;
  privateKeyPem: string;
  /** The client certificate, DER: its identity is read from it when asked for. */
  certificateDer: Buffer;
  warnings: string[];
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The client's files if they pass every quick check; undefined: run the full loader. */
export async function quickLoadClientTls(paths: TlsFilePaths, now = new Date()): Promise<QuickTlsMaterial | undefined> {
  try {
    const [caPem, certificatePem, privateKeyPem] = await Promise.all([paths.caPath, paths.certificatePath, paths.privateKeyPath].map((file) => readFile(file, 'utf8')));
    const cas = (caPem!.match(CERTIFICATE_BLOCK) ?? []).map((block) => new X509Certificate(block));
    const chain = certificatePem!.match(CERTIFICATE_BLOCK) ?? [];
    if (cas.length === 0 || chain.length !== 1 || cas.some((ca) => !ca.ca)) return undefined;
    if (/ENCRYPTED/.test(privateKeyPem!)) return undefined;
    const leaf = new X509Certificate(chain[0]!);
    const key: KeyObject = createPrivateKey(privateKeyPem!);
    const notAfter = new Date(leaf.validTo);
    if (leaf.ca || !(now >= new Date(leaf.validFrom) && now <= notAfter)) return undefined;
    if (!(leaf.keyUsage ?? []).includes(CLIENT_AUTH_OID) || !leaf.checkPrivateKey(key)) return undefined;
    const anchor = cas.find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
    if (anchor === undefined || !(now >= new Date(anchor.validFrom) && now <= new Date(anchor.validTo))) return undefined;

    const warnings: string[] = [];
    for (const ca of cas) {
      if (ca !== anchor && new Date(ca.validTo) < now) warnings.push(`CA certificate ${paths.caPath}: "${ca.subject.replace(/\n/g, ', ')}" expired on ${day(new Date(ca.validTo))}`);
    }
    const expiry = expiryWarning('client certificate', paths.certificatePath, notAfter, now, REMEDY.client);
    if (expiry !== undefined) warnings.push(expiry);
    const keyMode = await keyModeWarning('client private key', paths.privateKeyPath);
    if (keyMode !== undefined) warnings.push(keyMode);
    return { caPem: caPem!, certificatePem: certificatePem!, privateKeyPem: privateKeyPem!, certificateDer: leaf.raw, warnings };
  } catch {
    return undefined; // unreadable, not PEM, not a certificate or key: the full loader says which
  }
}
