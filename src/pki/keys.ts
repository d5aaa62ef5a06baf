// Key pairs for the PKI: generated and imported with Node's WebCrypto, exported as PKCS#8 PEM.
import './reflect-metadata'; // before @peculiar/x509

import { createPrivateKey, KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

import { ValidationError } from '../errors';

// @peculiar/x509 signs and hashes through a WebCrypto provider; Node's is the only one we use.
x509.cryptoProvider.set(webcrypto);

/** Supported key algorithms: ECDSA on P-256 (default) or P-384. */
export const KEY_ALGORITHMS = ['P-256', 'P-384'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = 'P-256';

const HASH_OF: Record<KeyAlgorithm, string> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384' };
const CURVE_OF_OPENSSL_NAME: Record<string, KeyAlgorithm> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
};

export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type CryptoKey = webcrypto.CryptoKey;

export function checkKeyAlgorithm(value: string, field = 'keyAlgorithm'): KeyAlgorithm {
  if ((KEY_ALGORITHMS as readonly string[]).includes(value)) return value as KeyAlgorithm;
  throw new ValidationError(field, `must be one of ${KEY_ALGORITHMS.join(', ')}, got ${JSON.stringify(value)}`);
}

export async function generateKeyPair(algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM): Promise<CryptoKeyPair> {
  // extractable: the private key is written to a file once, right after generation.
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: algorithm }, true, ['sign', 'verify']);
}

/** The ECDSA signature algorithm a key of this curve signs with (hash size matched to the curve). */
export function signingAlgorithmFor(algorithm: KeyAlgorithm): { name: 'ECDSA'; hash: string } {
  return { name: 'ECDSA', hash: HASH_OF[algorithm] };
}

export function privateKeyToPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * Imports a PEM private key (PKCS#8 or SEC1 "EC PRIVATE KEY") for signing certificates.
 * Throws a plain Error describing the problem; callers add the file name.
 */
export async function importSigningKey(pem: string | Buffer): Promise<{ key: CryptoKey; algorithm: KeyAlgorithm }> {
  const keyObject = createPrivateKey(pem);
  const curve = keyObject.asymmetricKeyType === 'ec' ? keyObject.asymmetricKeyDetails?.namedCurve : undefined;
  const algorithm = curve === undefined ? undefined : CURVE_OF_OPENSSL_NAME[curve];
  if (algorithm === undefined) {
    throw new Error(
      `unsupported key type ${keyObject.asymmetricKeyType ?? '?'}${curve === undefined ? '' : ` (${curve})`}; ` +
        `the CA key must be ECDSA ${KEY_ALGORITHMS.join(' or ')}`,
    );
  }
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: algorithm }, false, [
    'sign',
  ]);
  return { key, algorithm };
}
