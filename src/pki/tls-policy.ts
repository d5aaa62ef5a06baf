// The TLS policy both ends use: TLS 1.3 only, with the cipher suites, key-exchange groups and
// signature algorithms pinned (not left to whatever the linked OpenSSL enables by default).
//
// - Versions: 1.3 only. 1.2 and below are refused by both server and client.
// - Cipher suites: the three AEAD suites of RFC 8446, strongest first (the server's order wins):
//   AES-256-GCM, ChaCha20-Poly1305 (fast without AES hardware), AES-128-GCM (mandatory to
//   implement). The CCM suites are left out.
// - Groups (ECDHE): X25519, then P-256 and P-384. No finite-field DH, no P-521, no X448.
//   (OpenSSL 3.0, as linked by Node 20, has no post-quantum hybrid groups; add X25519MLKEM768 first
//   once the runtime's OpenSSL offers it.)
// - Signature algorithms: ECDSA with SHA-2 on P-256/P-384/P-521, Ed25519, RSA-PSS; RSA PKCS#1 v1.5
//   with SHA-2 is listed only so that certificates SIGNED that way by an external CA still verify
//   (TLS 1.3 never uses it for the handshake signature). Nothing with SHA-1 or SHA-224.
export const TLS_POLICY = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256',
  ecdhCurve: 'X25519:P-256:P-384',
  sigalgs: [
    'ecdsa_secp256r1_sha256',
    'ecdsa_secp384r1_sha384',
    'ecdsa_secp521r1_sha512',
    'ed25519',
    'rsa_pss_rsae_sha256',
    'rsa_pss_rsae_sha384',
    'rsa_pss_rsae_sha512',
    'rsa_pss_pss_sha256',
    'rsa_pss_pss_sha384',
    'rsa_pss_pss_sha512',
    'rsa_pkcs1_sha256',
    'rsa_pkcs1_sha384',
    'rsa_pkcs1_sha512',
  ].join(':'),
} as const;
