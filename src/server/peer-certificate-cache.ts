// One peer certificate object per TLS 1.3 connection, not one per call.
//
// grpc-js asks the TLS socket for the peer certificate on every call (getAuthContext, which the
// authentication interceptor uses), and Node builds it afresh each time from the X.509 data:
// subject, issuer, alternative names and three fingerprints, ~120 µs here, a fifth of the daemon's
// CPU for a GetJob. On a TLS 1.3 connection the peer's certificate is fixed once the handshake is
// done: 1.3 has no renegotiation, and post-handshake authentication happens only if the server
// asks for it, which Node cannot do. So the first answer is kept for the socket's life (weakly:
// it goes with the socket) and handed out again. A connection on an older protocol, a socket
// with no peer certificate yet, and `detailed` requests are always answered afresh.
//
// grpc-js keeps the socket to itself, so the cache sits on TLSSocket.prototype.getPeerCertificate;
// the daemon's server installs it once (installPeerCertificateCache). The object handed out is
// the same on every call of a connection: nothing in the daemon or grpc-js changes it.
import { TLSSocket, type PeerCertificate } from 'node:tls';

const certificates = new WeakMap<TLSSocket, PeerCertificate>();
let builds = 0;
let installed = false;

/** How many peer certificates were built (not answered from the cache) since the process started. */
export function peerCertificateBuilds(): number {
  return builds;
}

/** Makes TLSSocket#getPeerCertificate() answer a TLS 1.3 connection's later calls from its first. */
export function installPeerCertificateCache(): void {
  if (installed) return;
  installed = true;
  const build = TLSSocket.prototype.getPeerCertificate;
  TLSSocket.prototype.getPeerCertificate = function getPeerCertificate(this: TLSSocket, detailed?: boolean) {
    if (detailed === true) {
      builds++;
      return build.call(this, detailed);
    }
    const known = certificates.get(this);
    if (known !== undefined) return known;
    builds++;
    const certificate = build.call(this, detailed);
    // An empty object (no certificate yet) or null (no handle): answered afresh until there is one.
    if (certificate?.raw !== undefined && this.getProtocol() === 'TLSv1.3') certificates.set(this, certificate);
    return certificate;
  } as TLSSocket['getPeerCertificate'];
}
