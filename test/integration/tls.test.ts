// Mutual TLS 1.3 over loopback against a real grpc-js server: who gets in, who is refused, what
// identity the server sees, and certificate reload without dropping a stream.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect as netConnect, Socket } from 'node:net';
import { promisify } from 'node:util';
import { connect as tlsConnect, TLSSocket, type ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ChannelCredentials, ServerCredentials, status as GrpcStatus, type Client } from '@grpc/grpc-js';

import { createChannelCredentials, loadChannelCredentials } from '../../src/client/credentials';
import { createCa, loadServerTlsMaterial, TlsMaterialError, type TlsFilePaths } from '../../src/pki';
import { installPeerCertificateCache, peerCertificateBuilds } from '../../src/server/peer-certificate-cache';
import { createServerCredentials, reloadServerCredentials, type ReloadableServerCredentials } from '../../src/server/tls';
import { craftCertificate, createTestPki, rawChannelCredentials, type TestPki } from '../helpers/pki';
import {
  echoClient,
  openEcho,
  roundTrip,
  serviceErrorOf,
  startEchoServer,
  whoAmI,
  type EchoServer,
} from '../helpers/pki-echo-service';

const execFileAsync = promisify(execFile);

let pki: TestPki;
let otherPki: TestPki;
let serverPaths: TlsFilePaths;
let credentials: ReloadableServerCredentials;
let server: EchoServer;
const clients: Client[] = [];

function track(client: Client): Client {
  clients.push(client);
  return client;
}

async function clientFor(paths: TlsFilePaths, serverName?: string): Promise<Client> {
  const { credentials: creds } = await loadChannelCredentials(paths, serverName === undefined ? {} : { serverName });
  return track(echoClient(server.port, creds));
}

/** A raw TLS connection to the server (no gRPC); resolves once secure, rejects on error/close. */
function rawTls(options: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ALPNProtocols: ['h2'], ...options });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

/**
 * What the server does with a TLS connection presenting `cert` (or none): 'served' if it starts
 * HTTP/2 (its first frame, SETTINGS, arrives), 'refused' if the handshake fails or the server
 * closes the connection. TLS 1.3 verifies the client after the client's side of the handshake has
 * completed, so a refusal often shows only as the server closing the socket.
 */
async function tlsVerdict(cert?: { certificatePem: string; privateKeyPem: string }): Promise<'served' | 'refused'> {
  let socket: TLSSocket;
  try {
    socket = await rawTls({
      ca: pki.ca.certificatePem,
      ...(cert === undefined ? {} : { cert: cert.certificatePem, key: cert.privateKeyPem }),
    });
  } catch {
    return 'refused';
  }
  return new Promise((resolve) => {
    socket.on('error', () => undefined);
    socket.once('close', () => resolve('refused'));
    socket.once('data', (chunk: Buffer) => {
      // An HTTP/2 frame header is 9 bytes; byte 3 is the type, 0x4 = SETTINGS.
      resolve(chunk.length >= 9 && chunk[3] === 0x04 ? 'served' : 'refused');
      socket.destroy();
    });
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
  });
}

async function assertRefused(client: Client, what: RegExp | undefined = undefined): Promise<void> {
  const before = server.handlerCalls;
  const error = await serviceErrorOf(whoAmI(client));
  assert.equal(error.code, GrpcStatus.UNAVAILABLE, `expected UNAVAILABLE, got ${error.code}: ${error.details}`);
  if (what !== undefined) assert.match(error.details, what);
  assert.equal(server.handlerCalls, before, 'the handler must not run');
}

before(async () => {
  installPeerCertificateCache(); // as the daemon's server does
  pki = await createTestPki();
  otherPki = await createTestPki();
  serverPaths = await pki.server(undefined, 'server');
  credentials = createServerCredentials(await loadServerTlsMaterial(serverPaths));
  server = await startEchoServer(credentials, {
    authorize: (methodPath, identity) => {
      if (identity.name === 'buggy') throw new Error('a bug in the RBAC table');
      return identity.name === 'denied' ? { code: GrpcStatus.PERMISSION_DENIED, details: `no ${methodPath} for you` } : null;
    },
  });
});

after(() => {
  for (const client of clients) client.close();
  server?.close();
  pki?.remove();
  otherPki?.remove();
});

describe('accepted clients', () => {
  for (const roles of [['reader'], ['writer'], ['admin'], ['reader', 'writer']] as const) {
    it(`a client with roles ${roles.join('+')} is served, and the server sees its name and roles`, async () => {
      const client = await clientFor(await pki.client({ name: `user-${roles.join('-')}`, roles }));
      assert.deepEqual(await whoAmI(client), { name: `user-${roles.join('-')}`, roles: [...roles], ignoredRoles: [] });
    });
  }

  it('negotiates TLS 1.3 with the server-preferred suite and a pinned group', async () => {
    const alice = await pki.client({ name: 'alice', roles: ['reader'] });
    const socket = await rawTls({
      ca: pki.ca.certificatePem,
      cert: alice.issued.certificatePem,
      key: alice.issued.privateKeyPem,
      // The client prefers AES-128; the server's order (AES-256 first) must win.
      ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384',
    });
    try {
      assert.equal(socket.getProtocol(), 'TLSv1.3');
      assert.equal(socket.getCipher().name, 'TLS_AES_256_GCM_SHA384');
      assert.equal(socket.alpnProtocol, 'h2');
      assert.deepEqual(socket.getEphemeralKeyInfo(), { type: 'ECDH', name: 'X25519', size: 253 });
    } finally {
      socket.destroy();
    }
  });

  it('a good certificate is served at the TLS level too (control for the refusals below)', async () => {
    const alice = await pki.client({ name: 'alice-raw', roles: ['reader'] });
    assert.equal(await tlsVerdict(alice.issued), 'served');
  });

  it('a connection\'s peer certificate is built once, not once per call; a new connection builds its own', async () => {
    const client = await clientFor(await pki.client({ name: 'counted', roles: ['reader'] }));
    await whoAmI(client); // connected
    const before = peerCertificateBuilds();
    for (let i = 0; i < 5; i++) assert.equal((await whoAmI(client)).name, 'counted');
    assert.equal(peerCertificateBuilds() - before, 0, 'calls on the connected client build no certificate');
    const other = await clientFor(await pki.client({ name: 'counted-too', roles: ['reader'] }));
    assert.equal((await whoAmI(other)).name, 'counted-too');
    const connected = peerCertificateBuilds();
    // (The client side of the handshake, in this process too, asks for the server's.)
    assert.ok(connected > before, 'the new connection built its own');
    for (let i = 0; i < 3; i++) assert.equal((await whoAmI(other)).name, 'counted-too');
    assert.equal((await whoAmI(client)).name, 'counted', 'each connection keeps its own certificate');
    assert.equal(peerCertificateBuilds(), connected, 'and builds no more');
    const unconnected = new TLSSocket(new Socket());
    unconnected.destroy();
    assert.equal(unconnected.getPeerCertificate(), null, 'a socket without a handle answers null, as without the cache');
  });

  it('the authorize hook runs before the handler and can refuse', async () => {
    const client = await clientFor(await pki.client({ name: 'denied', roles: ['admin'] }));
    const before = server.handlerCalls;
    const error = await serviceErrorOf(whoAmI(client));
    assert.equal(error.code, GrpcStatus.PERMISSION_DENIED);
    assert.match(error.details, /no \/jobworker\.test\.Echo\/WhoAmI for you/);
    assert.equal(server.handlerCalls, before);
  });

  it('an exception in the authorize hook answers INTERNAL and does not reach the handler', async () => {
    const client = await clientFor(await pki.client({ name: 'buggy', roles: ['admin'] }));
    const before = server.handlerCalls;
    const error = await serviceErrorOf(whoAmI(client));
    assert.equal(error.code, GrpcStatus.INTERNAL);
    assert.equal(error.details, 'authorization failed');
    assert.equal(server.handlerCalls, before);
  });

  it('verifies the server name against another name when asked (serverName)', async () => {
    const paths = await pki.client({ name: 'bob', roles: ['reader'] });
    // The certificate names localhost/127.0.0.1; checking it as "localhost" is fine…
    assert.equal((await whoAmI(await clientFor(paths, 'localhost'))).name, 'bob');
    // …as anything else is not.
    await assertRefused(await clientFor(paths, 'jobs.example.org'), /does not match|altnames/i);
  });
});

describe('refused clients', () => {
  it('a client whose certificate was issued by another CA', async () => {
    const stranger = await otherPki.client({ name: 'stranger', roles: ['admin'] });
    const client = track(
      echoClient(
        server.port,
        rawChannelCredentials({ ca: pki.ca.certificatePem, cert: stranger.issued.certificatePem, key: stranger.issued.privateKeyPem }),
      ),
    );
    await assertRefused(client);
    assert.equal(await tlsVerdict(stranger.issued), 'refused');
  });

  it('a self-signed client certificate (with an admin roles extension)', async () => {
    const forged = await craftCertificate({ subject: [{ CN: ['mallory'] }], roles: ['admin'] });
    const client = track(
      echoClient(server.port, rawChannelCredentials({ ca: pki.ca.certificatePem, cert: forged.certificatePem, key: forged.privateKeyPem })),
    );
    await assertRefused(client);
    assert.equal(await tlsVerdict(forged), 'refused');
  });

  it('an expired client certificate', async () => {
    const expired = await craftCertificate({
      subject: [{ CN: ['late'] }],
      issuer: pki.ca,
      roles: ['admin'],
      notBefore: new Date(Date.now() - 3 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const client = track(
      echoClient(server.port, rawChannelCredentials({ ca: pki.ca.certificatePem, cert: expired.certificatePem, key: expired.privateKeyPem })),
    );
    await assertRefused(client);
    assert.equal(await tlsVerdict(expired), 'refused');
  });

  it('a server certificate presented as a client certificate (EKU serverAuth only)', async () => {
    const serverOnly = await pki.server({ dnsNames: ['client.example'] });
    const client = track(
      echoClient(
        server.port,
        rawChannelCredentials({ ca: pki.ca.certificatePem, cert: serverOnly.issued.certificatePem, key: serverOnly.issued.privateKeyPem }),
      ),
    );
    await assertRefused(client);
    assert.equal(await tlsVerdict(serverOnly.issued), 'refused');
  });

  it('a client without a certificate', async () => {
    const client = track(echoClient(server.port, rawChannelCredentials({ ca: pki.ca.certificatePem })));
    await assertRefused(client, /certificate required/);
    assert.equal(await tlsVerdict(), 'refused');
  });

  it('a TLS 1.2 client, even with a valid certificate', async () => {
    const alice = await pki.client({ name: 'alice12', roles: ['admin'] });
    const error = await rawTls({
      ca: pki.ca.certificatePem,
      cert: alice.issued.certificatePem,
      key: alice.issued.privateKeyPem,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
    }).then(
      (socket) => {
        socket.destroy();
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(error, 'the TLS 1.2 handshake must fail');
    assert.match(error.message, /protocol version|unsupported protocol|wrong version/i);
  });

  it('TLS 1.2 from another TLS stack (openssl s_client -tls1_2), with TLS 1.3 as control', async (t) => {
    const openssl = await execFileAsync('openssl', ['version']).catch(() => undefined);
    if (openssl === undefined) {
      t.skip('openssl not installed');
      return;
    }
    const alice = await pki.client({ name: 'alice-openssl', roles: ['reader'] });
    const sClient = (version: string) => {
      const run = execFileAsync(
        'openssl',
        [
          's_client', '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', version,
          '-CAfile', pki.caPath, '-cert', alice.certificatePath, '-key', alice.privateKeyPath,
          '-alpn', 'h2', '-verify_return_error', '-brief',
        ],
        { timeout: 10_000 },
      );
      run.child.stdin?.end(); // s_client quits at end of input, right after the handshake
      return run.then(
        (r) => ({ ok: true, output: r.stdout + r.stderr }),
        (e: { stdout?: string; stderr?: string }) => ({ ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
      );
    };
    const tls13 = await sClient('-tls1_3');
    assert.ok(tls13.ok, tls13.output);
    assert.match(tls13.output, /Protocol version: TLSv1\.3/);
    const tls12 = await sClient('-tls1_2');
    assert.equal(tls12.ok, false, tls12.output);
    assert.match(tls12.output, /protocol version|no protocols available|handshake failure/i);
  });

  it('a client offering only groups outside the pinned set (X448)', async () => {
    const alice = await pki.client({ name: 'alice448', roles: ['admin'] });
    const error = await rawTls({
      ca: pki.ca.certificatePem,
      cert: alice.issued.certificatePem,
      key: alice.issued.privateKeyPem,
      ecdhCurve: 'X448',
    }).then(
      (socket) => {
        socket.destroy();
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(error, 'the handshake must fail');
    assert.match(error.message, /handshake failure|no suitable key share|alert/i);
  });

  it('a plaintext gRPC client', async () => {
    await assertRefused(track(echoClient(server.port, ChannelCredentials.createInsecure())));
  });

  it('a plaintext HTTP/2 preface gets no HTTP/2 answer', async () => {
    const received = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = netConnect(server.port, '127.0.0.1', () => socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    // At most a TLS alert record (content type 21); never an HTTP/2 SETTINGS frame.
    assert.ok(received.length === 0 || received[0] === 0x15, `unexpected answer ${received.toString('hex')}`);
  });
});

describe('identity comes from CN and the roles extension only', () => {
  it('OU=admin (and other subject attributes) grant nothing; the roles extension says reader', async () => {
    const forged = await craftCertificate({
      subject: [{ CN: ['mallory'] }, { OU: ['admin'] }, { O: ['admin'] }, { '2.5.4.12': ['admin'] }], // 2.5.4.12: title
      issuer: pki.ca,
      roles: ['reader'],
    });
    const paths = await pki.write(forged, 'mallory-ou');
    assert.deepEqual(await whoAmI(await clientFor(paths)), { name: 'mallory', roles: ['reader'], ignoredRoles: [] });
  });

  it('OU=admin without a roles extension gives no role at all', async () => {
    const forged = await craftCertificate({ subject: [{ CN: ['eve'] }, { OU: ['admin'] }], issuer: pki.ca });
    const paths = await pki.write(forged, 'eve-ou');
    assert.deepEqual(await whoAmI(await clientFor(paths)), { name: 'eve', roles: [], ignoredRoles: [] });
  });

  it('unknown roles are ignored and reported', async () => {
    const forged = await craftCertificate({ subject: [{ CN: ['future'] }], issuer: pki.ca, roles: ['reader', 'superuser', 'Admin'] });
    const paths = await pki.write(forged, 'future');
    assert.deepEqual(await whoAmI(await clientFor(paths)), { name: 'future', roles: ['reader'], ignoredRoles: ['superuser', 'Admin'] });
  });

  it('a CA-signed certificate without CN passes TLS but is UNAUTHENTICATED', async () => {
    const anonymous = await craftCertificate({ subject: [{ O: ['jobworker'] }], issuer: pki.ca, roles: ['admin'] });
    const client = track(
      echoClient(server.port, rawChannelCredentials({ ca: pki.ca.certificatePem, cert: anonymous.certificatePem, key: anonymous.privateKeyPem })),
    );
    const before = server.handlerCalls;
    const error = await serviceErrorOf(whoAmI(client));
    assert.equal(error.code, GrpcStatus.UNAUTHENTICATED);
    assert.match(error.details, /commonName/);
    assert.equal(server.handlerCalls, before);
    assert.ok(server.refusals.some((r) => r.code === GrpcStatus.UNAUTHENTICATED));
  });

  it('a client certificate carrying the roles extension twice is UNAUTHENTICATED', async () => {
    const doubled = await craftCertificate({ subject: [{ CN: ['twice'] }], issuer: pki.ca, roles: ['reader'], rolesCount: 2 });
    const client = track(
      echoClient(server.port, rawChannelCredentials({ ca: pki.ca.certificatePem, cert: doubled.certificatePem, key: doubled.privateKeyPem })),
    );
    const error = await serviceErrorOf(whoAmI(client));
    assert.equal(error.code, GrpcStatus.UNAUTHENTICATED);
    assert.match(error.details, /more than once/);
  });
});

describe('the client verifies the server', () => {
  it('refuses a server whose certificate does not name the host it dials', async () => {
    const wrongName = await pki.server({ dnsNames: ['elsewhere.example'] }, 'server-elsewhere');
    const other = await startEchoServer(createServerCredentials(await loadServerTlsMaterial(wrongName)));
    try {
      const alice = await pki.client({ name: 'alice-name', roles: ['reader'] });
      const { credentials: creds } = await loadChannelCredentials(alice);
      const client = track(echoClient(other.port, creds));
      const error = await serviceErrorOf(whoAmI(client));
      assert.equal(error.code, GrpcStatus.UNAVAILABLE);
      assert.match(error.details, /does not match|altnames/i);
      assert.equal(other.handlerCalls, 0);
    } finally {
      other.close();
    }
  });

  it('refuses a server whose certificate comes from another CA', async () => {
    const alice = await otherPki.client({ name: 'alice-ca', roles: ['reader'] });
    const { credentials: creds } = await loadChannelCredentials(alice);
    const error = await serviceErrorOf(whoAmI(track(echoClient(server.port, creds))));
    assert.equal(error.code, GrpcStatus.UNAVAILABLE);
    assert.match(error.details, /self.signed|unable to (get|verify)|certificate/i);
  });

  it('refuses a server presenting a client certificate (EKU clientAuth only)', async () => {
    const clientCert = await craftCertificate({
      subject: [{ CN: ['localhost'] }],
      issuer: pki.ca,
      extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
    });
    // The loader refuses to serve it…
    const paths = await pki.write(clientCert, 'client-as-server');
    await assert.rejects(
      () => loadServerTlsMaterial(paths),
      (error: unknown) => error instanceof TlsMaterialError && error.problem === 'wrong-usage',
    );
    // …and a server that serves it anyway (plain createSsl) is refused by the client.
    const other = await startEchoServer(
      ServerCredentials.createSsl(
        Buffer.from(pki.ca.certificatePem),
        [{ cert_chain: Buffer.from(clientCert.certificatePem), private_key: Buffer.from(clientCert.privateKeyPem) }],
        true,
      ),
    );
    try {
      const alice = await pki.client({ name: 'alice-eku', roles: ['reader'] });
      const { credentials: creds } = await loadChannelCredentials(alice);
      const error = await serviceErrorOf(whoAmI(track(echoClient(other.port, creds))));
      assert.equal(error.code, GrpcStatus.UNAVAILABLE);
      assert.match(error.details, /purpose/i);
      assert.equal(other.handlerCalls, 0);
    } finally {
      other.close();
    }
  });

  it('client credentials refuse server material', () => {
    assert.throws(() => createChannelCredentials(credentials.material), /not a client/);
  });
});

describe('reload', () => {
  it('swaps the server certificate on reload without dropping an established stream', async () => {
    const alice = await pki.client({ name: 'streamer', roles: ['reader'] });
    const client = await clientFor(alice);
    const stream = openEcho(client);
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    assert.equal(await roundTrip(stream, 'before'), 'before');

    const oldSerial = credentials.material.certificate.serialNumber;
    const renewed = await pki.server(undefined, 'server-renewed');
    const material = await reloadServerCredentials(credentials, renewed);
    assert.notEqual(material.certificate.serialNumber, oldSerial);
    assert.equal(credentials.material, material);

    // The established stream carries on, over the same connection.
    assert.equal(await roundTrip(stream, 'after'), 'after');

    // New connections get the new certificate, and the policy survived the reload.
    const socket = await rawTls({ ca: pki.ca.certificatePem, cert: alice.issued.certificatePem, key: alice.issued.privateKeyPem });
    try {
      assert.equal(socket.getPeerX509Certificate()?.serialNumber.toLowerCase(), material.certificate.serialNumber.toLowerCase());
      assert.equal(socket.getProtocol(), 'TLSv1.3');
    } finally {
      socket.destroy();
    }
    const tls12 = await rawTls({
      ca: pki.ca.certificatePem,
      cert: alice.issued.certificatePem,
      key: alice.issued.privateKeyPem,
      maxVersion: 'TLSv1.2',
    }).then(
      (s) => {
        s.destroy();
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(tls12, 'TLS 1.2 must still be refused after a reload');
    const x448 = await rawTls({
      ca: pki.ca.certificatePem,
      cert: alice.issued.certificatePem,
      key: alice.issued.privateKeyPem,
      ecdhCurve: 'X448',
    }).then(
      (s) => {
        s.destroy();
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(x448, 'the pinned groups must survive a reload');
    assert.equal((await whoAmI(await clientFor(alice))).name, 'streamer');

    stream.end();
    await ended;
  });

  it('a reload that fails keeps serving the current certificate', async () => {
    const current = credentials.material;
    await assert.rejects(
      () => reloadServerCredentials(credentials, { ...serverPaths, certificatePath: `${pki.dir}/missing.pem` }),
      (error: unknown) => error instanceof TlsMaterialError && error.problem === 'missing',
    );
    assert.equal(credentials.material, current);
    const alice = await pki.client({ name: 'after-failed-reload', roles: ['reader'] });
    assert.equal((await whoAmI(await clientFor(alice))).name, 'after-failed-reload');
  });

  it('a reload can switch to a new CA: clients of the old CA are then refused on new connections', async () => {
    const newCa = await createCa({ commonName: 'jobworker test CA 2' });
    const next = await createTestPki(newCa);
    try {
      const nextServer = await next.server(undefined, 'server');
      await reloadServerCredentials(credentials, nextServer);
      const newClient = await next.client({ name: 'new-ca-client', roles: ['reader'] });
      assert.equal((await whoAmI(await clientFor(newClient))).name, 'new-ca-client');
      const oldClient = await pki.client({ name: 'old-ca-client', roles: ['reader'] });
      await assertRefused(await clientFor(oldClient));
    } finally {
      await reloadServerCredentials(credentials, serverPaths);
      next.remove();
    }
  });
});
