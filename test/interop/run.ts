// `npm run test:interop`: the API driven by a client we did not write. Starts the real daemon
// (bin/job-worker.js) on a free loopback port with a throwaway PKI, issues a certificate per role
// (and the odd ones: no role, no identity, another CA), and runs test/interop/interop.py against it
// with Debian's python3 and C-core gRPC (python3-grpcio; stubs from Debian's protoc). The Python
// suite prints one line per check and a closing "N passed, N failed"; this exits with its status.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { createCa, issueClientCertificate } from '../../src/pki';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { mkdtempVisibleToJobs } from '../helpers/job-visible-dir';
import { craftCertificate, createTestPki, type TestPki } from '../helpers/pki';

const REPO = path.join(__dirname, '..', '..', '..');
const PYTHON = '/usr/bin/python3'; // Debian's, where python3-grpcio is (not a pyenv or venv one)
const NEEDED = [PYTHON, '/usr/bin/protoc', '/usr/bin/grpc_python_plugin', '/usr/include/google/protobuf/timestamp.proto', '/usr/share/grpc-proto/grpc/reflection/v1/reflection.proto'];
const PACKAGES = 'python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev grpc-proto';

interface Identity {
  cert: string;
  key: string;
}

async function identities(pki: TestPki): Promise<Record<string, Identity>> {
  const files = (f: { certificatePath: string; privateKeyPath: string }) => ({ cert: f.certificatePath, key: f.privateKeyPath });
  const out: Record<string, Identity> = {
    admin: files(await pki.client({ name: 'interop-admin', roles: ['admin'] })),
    alice: files(await pki.client({ name: 'alice', roles: ['writer'] })),
    alice_reader: files(await pki.client({ name: 'alice', roles: ['reader'] })),
    bob: files(await pki.client({ name: 'bob', roles: ['writer'] })),
    nobody: files(await pki.write(await craftCertificate({ subject: [{ CN: ['nobody'] }], issuer: pki.ca }), 'nobody')),
    no_identity: files(await pki.write(await craftCertificate({ subject: [{ O: ['no common name'] }], issuer: pki.ca, roles: ['admin'] }), 'no-identity')),
  };
  const otherCa = await createCa({ commonName: 'another CA' });
  out.other_ca = files(await pki.write(await issueClientCertificate(otherCa, { name: 'mallory', roles: ['admin'] }), 'other-ca'));
  return out;
}

function runPython(config: string): Promise<number> {
  const child = spawn(PYTHON, [path.join(REPO, 'test', 'interop', 'interop.py'), config], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', PYTHONDONTWRITEBYTECODE: '1' },
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}

async function main(): Promise<number> {
  const missing = NEEDED.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    process.stderr.write(`test:interop needs ${missing.join(', ')}: apt-get install ${PACKAGES}\n`);
    return 1;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('test:interop runs the daemon, which needs root (cgroups)\n');
    return 1;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-interop-'));
  // The Python client's files: a job of the streaming check reads one. Not under /tmp (each job has
  // a private one) nor under `dir`, which holds the daemon's config and so is hidden from jobs.
  const work = mkdtempVisibleToJobs('interop');
  const pki = await createTestPki();
  let daemon: RunningTestDaemon | undefined;
  try {
    const stateDir = mkdtempSync(path.join(dir, 'state-'));
    daemon = await startTlsDaemon('interop', await pki.server(), dir, stateDir);
    const config = path.join(dir, 'interop.json');
    writeFileSync(
      config,
      JSON.stringify({ address: daemon.address, ca: pki.caPath, identities: await identities(pki), stateDir, workDir: work, protoDir: path.join(REPO, 'proto') }),
    );
    const code = await runPython(config);
    await daemon.stop();
    daemon = undefined;
    const left = leftoverCgroups(`jobworker-test-${process.pid}-interop`);
    if (left.length > 0) {
      process.stderr.write(`cgroups left behind: ${left.join(', ')}\n`);
      return 1;
    }
    return code;
  } finally {
    await daemon?.stop().catch(() => undefined);
    pki.remove();
    rmSync(dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`test:interop: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
