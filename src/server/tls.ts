// gRPC server credentials for mutual TLS 1.3, reloadable without a restart.
//
// grpc-js (1.14) builds its http2 secure server from two option sets held by a ServerCredentials:
// `_getConstructorOptions()` (server-level: requestCert, rejectUnauthorized, …) and
// `_getSecureContextOptions()` (key, cert, ca, …), spread together into http2.createSecureServer.
// When the credentials call the protected `updateSecureContextOptions(options)`, grpc-js calls
// `server.setSecureContext(options)` on every bound http2 server: new handshakes use the new
// context, established connections (and their streams) are untouched. `ServerCredentials.createSsl`
// cannot express TLS 1.3-only, so this module subclasses ServerCredentials instead.
//
// Node's `setSecureContext` RESETS every context option it is not given (minVersion, ciphers,
// ecdhCurve, sigalgs, secureOptions…) to Node's defaults. The whole TLS policy therefore lives in
// the context options, which are re-sent on every update, never in the constructor options only.
// See docs/security.md ("grpc-js findings") for the references.
import { constants as cryptoConstants } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ServerCredentials } from '@grpc/grpc-js';

import { JobworkerError } from '../errors';
import { loadServerTlsMaterial, type LoadOptions, type TlsFilePaths, type TlsMaterial } from '../pki/load';
import { TLS_POLICY } from '../pki/tls-policy';

/**
 * Abort TLS handshakes that have not completed after this long (Node's default is 120 s). Node's
 * timer is not reset by bytes the TLS layer consumes, so a client trickling its handshake one byte
 * at a time is cut as well (measured: a connection sending a byte every 1.5 s under a 2 s timeout
 * was closed after 2.0 s).
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Server credentials whose certificate, key and CA can be swapped while the server runs. */
export class ReloadableServerCredentials extends ServerCredentials {
  #material: TlsMaterial;

  constructor(material: TlsMaterial, handshakeTimeoutMs: number = HANDSHAKE_TIMEOUT_MS) {
    const contextOptions = secureContextOptions(material);
    super(
      {
        requestCert: true, // ask every client for a certificate…
        rejectUnauthorized: true, // …and drop the connection unless it verifies against the CA
        handshakeTimeout: handshakeTimeoutMs,
      },
      contextOptions,
    );
    this.#material = material;
  }

  /** The material currently served. */
  get material(): TlsMaterial {
    return this.#material;
  }

  /**
   * Serves `material` to new connections from now on. Throws, keeping the current material, if
   * OpenSSL refuses it: grpc-js would otherwise mark the credentials invalid and drop every new
   * connection until the next successful update (server.ts, credsWatcher).
   */
  update(material: TlsMaterial): void {
    checkServerMaterial(material);
    const contextOptions = secureContextOptions(material);
    try {
      createSecureContext(contextOptions);
    } catch (error) {
      throw new JobworkerError(
        'failed-precondition',
        `TLS material from ${material.paths.certificatePath} was refused by OpenSSL: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.#material = material;
    this.updateSecureContextOptions(contextOptions);
  }

  /** grpc-js compares credentials when a port is bound twice; only the same object is equal. */
  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** Server credentials from validated material (see `loadServerTlsMaterial`). */
export function createServerCredentials(material: TlsMaterial, handshakeTimeoutMs: number = HANDSHAKE_TIMEOUT_MS): ReloadableServerCredentials {
  checkServerMaterial(material);
  return new ReloadableServerCredentials(material, handshakeTimeoutMs);
}

/**
 * Re-reads and re-validates the files (by default the paths the credentials were loaded from) and
 * swaps them in for new connections; for SIGHUP. On any error the running credentials are kept
 * and the error (a TlsMaterialError naming the file) is thrown for the caller to log.
 */
export async function reloadServerCredentials(
  credentials: ReloadableServerCredentials,
  paths: TlsFilePaths = credentials.material.paths,
  options: LoadOptions = {},
): Promise<TlsMaterial> {
  const material = await loadServerTlsMaterial(paths, options);
  credentials.update(material);
  return material;
}

/** The context options: the material plus the whole TLS policy (re-sent on every reload). */
export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return {
    ...TLS_POLICY,
    honorCipherOrder: true,
    // No session tickets: every connection gets a full handshake, so every client certificate is
    // verified against the CA and the validity period in force at connection time (connections
    // are long-lived HTTP/2 sessions, so the extra cost is negligible).
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
    ca: material.caPem,
    cert: material.certificatePem,
    key: material.privateKeyPem,
  };
}

function checkServerMaterial(material: TlsMaterial): void {
  if (material.use !== 'server') {
    throw new JobworkerError('invalid-argument', `TLS material from ${material.paths.certificatePath} is for a ${material.use}, not a server`);
  }
}
