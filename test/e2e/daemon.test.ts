// The whole daemon as a process: refusing bad TLS files, health and reflection, metrics, SIGHUP
// reload, SIGTERM shutdown and restart, SIGKILL and recovery.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';

import { credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';

import { JobworkerClient } from '../../src/client';
import { HealthCheckResponse_ServingStatus, HealthClient, type HealthCheckResponse } from '../../src/gen/grpc/health/v1/health';
import { ServerReflectionClient, type ServerReflectionResponse } from '../../src/gen/grpc/reflection/v1/reflection';
import * as pb from '../../src/gen/jobworker/v1/jobworker';
import { runCli, show } from '../helpers/cli';
import { leftoverCgroups } from '../helpers/cli-daemon';
import { createTestPki, craftCertificate, rawChannelCredentialsFromFiles, type TestPki } from '../helpers/pki';
import { isRunning } from '../helpers/proc';
import { requireRoot } from '../helpers/root';
import { startDaemonProcess, type SpawnedDaemon } from '../helpers/spawned-daemon';

let pki: TestPki;
let dir: string;
let seq = 0;

function setup(extra: { stateDir?: string; tls?: Awaited<ReturnType<TestPki['server']>> } = {}) {
  return {
    stateDir: extra.stateDir ?? mkdtempSync(path.join(dir, 'state-')),
    cgroupRootName: `jobworker-test-${process.pid}-daemon-${seq++}`,
    configDir: dir,
  };
}

async function clientFor(port: number, name = 'ops', roles: ('admin' | 'writer' | 'reader')[] = ['admin']): Promise<JobworkerClient> {
  return JobworkerClient.connect({ address: `localhost:${port}`, tls: await pki.client({ name, roles }) });
}

describe('the daemon process', requireRoot, () => {
  before(async () => {
    pki = await createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-daemon-test-'));
  });
  after(() => {
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start on missing, expired or mismatched TLS files, naming the file', async () => {
    const good = await pki.server();
    const expired = await pki.write(
      await craftCertificate({ subject: [{ CN: ['localhost'] }], issuer: pki.ca, extendedKeyUsages: ['1.3.6.1.5.5.7.3.1'], notBefore: new Date(Date.now() - 10 * 86400e3), notAfter: new Date(Date.now() - 86400e3) }),
      'expired-server',
    );
    const other = await pki.server();
    const cases = [
      { tls: { ...good, certificatePath: path.join(dir, 'nope.pem') }, message: /nope\.pem/ },
      { tls: expired, message: /expired-server\.pem.*expired/ },
      { tls: { ...good, privateKeyPath: other.privateKeyPath }, message: /does not match|key/ },
    ];
    for (const { tls, message } of cases) {
      const daemon = startDaemonProcess({ ...setup(), tls });
      const exit = await daemon.exited;
      assert.equal(exit.code, 1, daemon.stderrText);
      assert.match(daemon.stderrText, message);
    }
  });

  describe('a running daemon', () => {
    let daemon: SpawnedDaemon;
    let port: number;
    let serverFiles: Awaited<ReturnType<TestPki['server']>>;

    before(async () => {
      serverFiles = await pki.server(undefined, 'live-server');
      daemon = startDaemonProcess({ ...setup(), tls: serverFiles });
      port = await daemon.port();
    });
    after(async () => {
      await daemon?.stop();
    });

    it('answers standard health checks and reflection', async () => {
      const files = await pki.client({ name: 'probe', roles: ['reader'] });
      const credentials = rawChannelCredentialsFromFiles(files);
      const health = new HealthClient(`localhost:${port}`, credentials);
      for (const service of ['', 'jobworker.v1.JobService']) {
        const response = await new Promise<HealthCheckResponse>((resolve, reject) => health.check({ service }, (e, r) => (e ? reject(e) : resolve(r))));
        assert.equal(response.status, HealthCheckResponse_ServingStatus.SERVING);
      }
      health.close();

      const reflection = new ServerReflectionClient(`localhost:${port}`, credentials);
      const call = reflection.serverReflectionInfo();
      call.write({ host: '', messageRequest: { $case: 'listServices', value: '*' } });
      const [response] = (await once(call, 'data')) as [ServerReflectionResponse];
      call.end();
      reflection.close();
      assert.equal(response.messageResponse?.$case, 'listServicesResponse');
      const names = response.messageResponse.value.service.map((s) => s.name);
      assert.ok(names.includes('jobworker.v1.JobService'), names.join(','));
    });

    it('refuses a plaintext client', async () => {
      const stub = new pb.JobServiceClient(`localhost:${port}`, grpcCredentials.createInsecure());
      const code = await new Promise<number>((resolve) => stub.listJobs({ states: [], owner: '', pageSize: 0, pageToken: '', name: '', labelSelector: [] }, new Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e?.code ?? 0)));
      stub.close();
      assert.equal(code, 14); // UNAVAILABLE: no TLS, no connection
    });

    it('serves Prometheus metrics', async () => {
      const metrics = await daemon.waitFor((l) => l.msg === 'serving');
      const response = await fetch(`http://${String(metrics.metrics)}/metrics`);
      assert.equal(response.status, 200);
      assert.match(await response.text(), /^jobworker_jobs\{state="running"\} \d+$/m);
    });

    it("does not serve metrics to a job (its dynamic uid owns the connection): 403, while the host's root is served", async () => {
      const metrics = await daemon.waitFor((l) => l.msg === 'serving');
      const [host, metricsPort] = String(metrics.metrics).split(':');
      const client = await clientFor(port, 'metrics-writer', ['writer']);
      try {
        // bash's /dev/tcp: a plain HTTP request from inside the job, on the host's network (the default).
        const script = `id -u; exec 3<>/dev/tcp/${host}/${metricsPort}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`;
        const job = await client.startJob({ command: 'bash', args: ['-c', script] });
        const chunks: Buffer[] = [];
        for await (const message of client.streamLogs({ jobId: job.id, follow: true, streams: ['stdout'] })) {
          for (const chunk of message.chunks) chunks.push(Buffer.from(chunk.data));
        }
        const [uid, status, ...rest] = Buffer.concat(chunks).toString().split('\n');
        assert.ok(Number(uid) >= 0x7000_0000, `the job runs as a dynamic uid, not ${uid}`);
        assert.match(status!, /^HTTP\/1\.[01] 403 /);
        assert.match(rest.join('\n'), /metrics are not served to the daemon's jobs/);
        assert.doesNotMatch(rest.join('\n'), /jobworker_jobs/);
      } finally {
        client.close();
      }
      const response = await fetch(`http://${String(metrics.metrics)}/metrics`);
      assert.equal(response.status, 200);
    });

    it('SIGHUP reloads the certificate for new connections; jobs and open streams are kept', async () => {
      const client = await clientFor(port);
      const job = await client.startJob({ command: 'sleep', args: ['1000'] });
      const serialBefore = await peerSerial(port);
      const fresh = await pki.server(undefined, 'fresh-server');
      copyFileSync(fresh.certificatePath, serverFiles.certificatePath);
      copyFileSync(fresh.privateKeyPath, serverFiles.privateKeyPath);
      const reloads = daemon.lines.filter((l) => l.msg === 'TLS certificates reloaded').length;
      daemon.child.kill('SIGHUP');
      await daemon.waitFor((l) => l.msg === 'TLS certificates reloaded' && daemon.lines.filter((x) => x.msg === l.msg).length > reloads);
      const serialAfter = await peerSerial(port);
      assert.notEqual(serialAfter, serialBefore);
      assert.equal(serialAfter, fresh.issued.certificate.serialNumber.toUpperCase());
      assert.equal((await client.getJob(job.id)).state, 'running'); // same connection, same job
      await client.stopJob(job.id, { graceMs: 0 });
      client.close();
    });
  });

  it('SIGHUP with new client CAs closes the connections verified under the old ones: an old client is cut off, a new CA\'s client connects', async () => {
    // Files of its own: the test PKI's CA file is every other test's too.
    const own = mkdtempSync(path.join(dir, 'rotate-'));
    const first = await pki.server(undefined, 'rotating-server');
    const tls = { caPath: path.join(own, 'ca.pem'), certificatePath: path.join(own, 'server.pem'), privateKeyPath: path.join(own, 'server-key.pem') };
    const install = (files: { caPath: string; certificatePath: string; privateKeyPath: string }) => {
      copyFileSync(files.caPath, tls.caPath);
      copyFileSync(files.certificatePath, tls.certificatePath);
      copyFileSync(files.privateKeyPath, tls.privateKeyPath);
    };
    install(first);
    const daemon = startDaemonProcess({ ...setup(), tls: { ...first, ...tls } });
    const next = await createTestPki();
    try {
      const port = await daemon.port();
      const old = await clientFor(port);
      const watching = (async () => {
        try {
          for await (const _ of old.watchJobs({})) void _;
          return 'ended';
        } catch (error) {
          return (error as { codeName?: string }).codeName ?? String(error);
        }
      })();
      await old.listJobs();
      install(await next.server(undefined, 'new-ca-server'));
      daemon.child.kill('SIGHUP');
      const reloaded = await daemon.waitFor((l) => l.msg === 'TLS certificates reloaded');
      assert.equal(reloaded.caChanged, true);
      assert.ok(Number(reloaded.connectionsClosed) >= 1, JSON.stringify(reloaded));
      assert.equal(await watching, 'UNAVAILABLE', 'the open stream ended');
      await assert.rejects(old.listJobs(), (error: unknown) => (error as { codeName?: string }).codeName === 'UNAVAILABLE', 'its certificate is not trusted any more');
      old.close();
      const fresh = await JobworkerClient.connect({ address: `localhost:${port}`, tls: await next.client({ name: 'ops', roles: ['admin'] }) });
      assert.ok(Array.isArray(await fresh.listAllJobs()));
      fresh.close();
    } finally {
      await daemon.stop();
      next.remove();
    }
  });

  it('SIGTERM stops running jobs (recorded as stopped), ends streams, removes cgroups; a restart keeps the history', async () => {
    const base = setup();
    const tls = await pki.server();
    const daemon = startDaemonProcess({ ...base, tls });
    const port = await daemon.port();
    const client = await clientFor(port);
    const job = await client.startJob({ command: 'sleep', args: ['1000'] });
    const following = (async () => {
      try {
        for await (const _ of client.streamLogs({ jobId: job.id, follow: true })) void _;
        return 'ended';
      } catch (error) {
        return (error as { codeName?: string }).codeName ?? String(error);
      }
    })();
    await daemon.waitFor((l) => l.msg === 'job started');
    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0);
    assert.ok(['UNAVAILABLE', 'ended'].includes(await following));
    assert.equal(isRunning(job.pid!), false);
    client.close();

    const again = startDaemonProcess({ ...base, tls });
    const client2 = await clientFor(await again.port());
    const after = await client2.getJob(job.id);
    assert.equal(after.state, 'stopped');
    assert.equal(after.outcome.stoppedBy, 'worker shutdown');
    client2.close();
    await again.stop();
  });

  it('whoever read its stderr went away: requests still succeed, and SIGTERM still stops the jobs and removes every cgroup', async () => {
    const base = setup();
    const daemon = startDaemonProcess({ ...base, tls: await pki.server() });
    const client = await clientFor(await daemon.port());
    try {
      daemon.child.stderr!.destroy(); // the daemon's writes to fd 2 now fail with EPIPE
      // Each start writes an audit line: the line is lost, the start is not.
      const job = await client.startJob({ command: 'sleep', args: ['1000'] });
      assert.equal((await client.getJob(job.id)).state, 'running');
      const exit = await daemon.stop('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.equal(isRunning(job.pid!), false);
      assert.deepEqual(leftoverCgroups(base.cgroupRootName), []);
    } finally {
      client.close();
      await daemon.stop('SIGKILL');
    }
  });

  it('after SIGKILL, a restart marks running jobs lost and kills them', async () => {
    const base = setup();
    const tls = await pki.server();
    const daemon = startDaemonProcess({ ...base, tls });
    const client = await clientFor(await daemon.port());
    const job = await client.startJob({ command: 'sh', args: ['-c', 'echo written-before-the-crash; exec sleep 1000'] });
    for await (const message of client.streamLogs({ jobId: job.id, follow: true })) {
      if (message.chunks.some((c) => c.data.toString().includes('written'))) break;
    }
    client.close();
    await daemon.stop('SIGKILL');
    assert.equal(isRunning(job.pid!), true, 'jobs outlive a killed daemon');

    const again = startDaemonProcess({ ...base, tls });
    const client2 = await clientFor(await again.port());
    const lost = await client2.getJob(job.id);
    assert.equal(lost.state, 'lost');
    assert.equal(isRunning(job.pid!), false);
    let text = '';
    for await (const message of client2.streamLogs({ jobId: job.id })) for (const c of message.chunks) text += c.data.toString();
    assert.equal(text, 'written-before-the-crash\n');
    // job-cli says so once: "job …: lost: …", not "was lost: lost: …".
    const files = await pki.client({ name: 'ops', roles: ['admin'] });
    const cli = await runCli(['stream', job.id], {
      home: dir,
      env: { JOBWORKER_ADDR: `localhost:${await again.port()}`, JOBWORKER_CA: files.caPath, JOBWORKER_CERT: files.certificatePath, JOBWORKER_KEY: files.privateKeyPath },
    });
    assert.equal(cli.code, 1, show(cli));
    assert.equal(cli.stdout, 'written-before-the-crash\n');
    assert.equal(cli.stderr, `job-cli: job ${job.id}: lost: the daemon stopped while the job was running; its processes were killed\n`);
    client2.close();
    await again.stop();
  });
});

/** The serial number of the certificate the server presents to a new connection. */
function peerSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}
