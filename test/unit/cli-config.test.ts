// job-cli's pure configuration pieces: connection precedence, addresses, the contexts file, the
// start request built from flags, and how daemon errors read.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { status as GrpcStatus } from '@grpc/grpc-js';

import { normalizeAddress, resolveConnection, type ConnectionInputs } from '../../src/cli/job-cli/connection';
import { checkContextName, readContexts, writeContexts } from '../../src/cli/job-cli/contexts';
import { connectionFailureReason, describeCallError, describeConnectFailure, withFlagNames } from '../../src/cli/job-cli/errors';
import { buildStartRequest } from '../../src/cli/job-cli/start-request';
import { normalizeSignal } from '../../src/cli/job-cli/stop';
import { CliError } from '../../src/cli/run';
import { ClientError } from '../../src/client';

const ctx = { address: 'ctx.example:1', ca: '/ctx/ca.pem', cert: '/ctx/cert.pem', key: '/ctx/key.pem' };

function inputs(over: Partial<ConnectionInputs> = {}): ConnectionInputs {
  return { flags: {}, env: {}, contexts: { contexts: {} }, configDir: '/home/u/.config/jobworker', cwd: '/work', ...over };
}

function usageError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof CliError && error.exitCode === 2 && message.test(error.message));
}

describe('connection precedence', () => {
  it('defaults: localhost:50051 and the config dir files', () => {
    const c = resolveConnection(inputs());
    assert.equal(c.context, 'default');
    assert.equal(c.address, 'localhost:50051');
    assert.deepEqual(c.tls, { caPath: '/home/u/.config/jobworker/ca.pem', certificatePath: '/home/u/.config/jobworker/cert.pem', privateKeyPath: '/home/u/.config/jobworker/key.pem' });
    assert.deepEqual(c.sources, { context: 'default', address: 'default', ca: 'default', cert: 'default', key: 'default' });
  });

  it('flags over environment over context over defaults, setting by setting', () => {
    const c = resolveConnection(
      inputs({
        flags: { addr: 'flag.example:3', key: 'rel/key.pem' },
        env: { JOBWORKER_ADDR: 'env.example:2', JOBWORKER_CERT: '/env/cert.pem', JOBWORKER_KEY: '/env/key.pem' },
        contexts: { current: 'c', contexts: { c: ctx } },
      }),
    );
    assert.equal(c.context, 'c');
    assert.equal(c.address, 'flag.example:3');
    assert.deepEqual(c.tls, { caPath: '/ctx/ca.pem', certificatePath: '/env/cert.pem', privateKeyPath: '/work/rel/key.pem' });
    assert.deepEqual(c.sources, { context: 'the current context', address: '--addr', ca: 'context c', cert: 'JOBWORKER_CERT', key: '--key' });
  });

  it('empty environment variables count as unset', () => {
    const c = resolveConnection(inputs({ env: { JOBWORKER_ADDR: '', JOBWORKER_CONTEXT: '' } }));
    assert.equal(c.address, 'localhost:50051');
    assert.equal(c.context, 'default');
  });

  it('chooses the context from --context, then JOBWORKER_CONTEXT, then the current one', () => {
    const contexts = { current: 'a', contexts: { a: { ...ctx, address: 'a:1' }, b: { ...ctx, address: 'b:1' }, c: { ...ctx, address: 'c:1' } } };
    assert.equal(resolveConnection(inputs({ contexts })).address, 'a:1');
    assert.equal(resolveConnection(inputs({ contexts, env: { JOBWORKER_CONTEXT: 'b' } })).address, 'b:1');
    assert.equal(resolveConnection(inputs({ contexts, env: { JOBWORKER_CONTEXT: 'b' }, flags: { context: 'c' } })).address, 'c:1');
    assert.equal(resolveConnection(inputs({ contexts, flags: { context: 'default' } })).address, 'localhost:50051');
  });

  it('an unknown context is a usage error naming where the name came from', () => {
    usageError(() => resolveConnection(inputs({ flags: { context: 'x' } })), /^--context: no context named "x" \(none is defined\)$/);
    usageError(() => resolveConnection(inputs({ env: { JOBWORKER_CONTEXT: 'x' }, contexts: { contexts: { b: ctx, a: ctx } } })), /^JOBWORKER_CONTEXT: no context named "x" \(known: default, a, b\)$/);
    usageError(() => resolveConnection(inputs({ contexts: { current: 'gone', contexts: {} } })), /^the current context: no context named "gone"/);
  });

  it('normalizes addresses, adding the default port', () => {
    assert.equal(normalizeAddress('worker1', '--addr'), 'worker1:50051');
    assert.equal(normalizeAddress(' worker1:7000 ', '--addr'), 'worker1:7000');
    assert.equal(normalizeAddress('10.0.0.5:1', '--addr'), '10.0.0.5:1');
    assert.equal(normalizeAddress('[::1]', '--addr'), '[::1]:50051');
    assert.equal(normalizeAddress('[fe80::1]:9', '--addr'), '[fe80::1]:9');
    usageError(() => normalizeAddress('::1', 'JOBWORKER_ADDR'), /^JOBWORKER_ADDR: an IPv6 address needs brackets/);
    usageError(() => normalizeAddress('host:0', '--addr'), /port must be from 1 to 65535/);
    usageError(() => normalizeAddress('host:65536', '--addr'), /port must be from 1 to 65535/);
    usageError(() => normalizeAddress('http://host:1', '--addr'), /expected HOST:PORT/);
    usageError(() => normalizeAddress('', '--addr'), /expected HOST:PORT/);
  });
});

describe('the contexts file', () => {
  it('round-trips, 0600, atomically (no temporary file left), in a directory it creates', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-contexts-'));
    try {
      const dir = path.join(root, 'config', 'jobworker');
      assert.deepEqual(readContexts(dir), { contexts: {} });
      writeContexts(dir, { current: 'a', contexts: { a: ctx } });
      assert.deepEqual(readContexts(dir), { current: 'a', contexts: { a: ctx } });
      assert.equal(statSync(path.join(dir, 'contexts.json')).mode & 0o777, 0o600);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      writeContexts(dir, { contexts: {} });
      assert.deepEqual(readContexts(dir), { contexts: {} });
      assert.deepEqual(readdirSync(dir), ['contexts.json']);
      assert.match(readFileSync(path.join(dir, 'contexts.json'), 'utf8'), /^\{\n {2}"contexts": \{\}\n\}\n$/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a damaged file is an error naming it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-contexts-'));
    try {
      const file = path.join(dir, 'contexts.json');
      writeFileSync(file, '{ nope');
      assert.throws(() => readContexts(dir), (e: unknown) => e instanceof CliError && e.message.startsWith(`contexts file ${file}: not valid JSON`));
      writeFileSync(file, JSON.stringify({ contexts: { a: { address: 1 } } }));
      assert.throws(() => readContexts(dir), (e: unknown) => e instanceof CliError && /contexts file .*: .*contexts\.a\.address/.test(e.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names: letters, digits, ".", "_", "-"; "default" is reserved', () => {
    assert.equal(checkContextName('prod-eu.1_a'), null);
    assert.match(checkContextName('default')!, /built-in/);
    assert.match(checkContextName('a/b')!, /not a valid name/);
    assert.match(checkContextName('-x')!, /not a valid name/);
    assert.match(checkContextName('x'.repeat(64))!, /not a valid name/);
  });
});

describe('the start request from flags', () => {
  it('maps every flag', () => {
    const request = buildStartRequest({
      command: ['make', '-j4'],
      cpu: '0.5',
      cpuWeight: '200',
      memory: '256M',
      memoryHigh: '200M',
      pids: '100',
      ioReadBps: ['/dev/sda=10M', '8:16=1K'],
      ioWriteBps: ['/dev/sda=5M'],
      ioReadIops: ['100'],
      ioWriteIops: ['/dev/sda=50'],
      env: ['A=1', 'B=x=y', 'EMPTY='],
      cwd: '/srv',
    });
    assert.deepEqual(request, {
      command: 'make',
      args: ['-j4'],
      env: { A: '1', B: 'x=y', EMPTY: '' },
      cwd: '/srv',
      limits: {
        cpu: 0.5,
        cpuWeight: 200,
        memoryBytes: 256 * 2 ** 20,
        memoryHighBytes: 200 * 2 ** 20,
        pids: 100,
        io: [
          { device: '/dev/sda', readBytesPerSecond: 10 * 2 ** 20, writeBytesPerSecond: 5 * 2 ** 20, writeIops: 50 },
          { device: '8:16', readBytesPerSecond: 1024 },
          { device: '', readIops: 100 },
        ],
      },
    });
  });

  it('sends nothing the user did not ask for', () => {
    assert.deepEqual(buildStartRequest({ command: ['true'] }), { command: 'true', args: [], env: {}, cwd: '', limits: { io: [] } });
  });

  it('-e NAME passes job-cli\'s own value (none: no variable, like docker); --env-file lines; --env wins over a file', () => {
    const clientEnv = { HOME: '/home/ada', TERM: 'xterm' };
    assert.deepEqual(buildStartRequest({ command: ['x'], env: ['HOME', 'UNSET_HERE', 'A=1'] }, clientEnv).env, { HOME: '/home/ada', A: '1' });
    const envFiles = [
      { file: 'a.env', text: '# comment\n\nA=from a\nB=b=c\n  TERM\nUNSET_HERE\r\n' },
      { file: 'b.env', text: 'A=from b\nC=' },
    ];
    assert.deepEqual(buildStartRequest({ command: ['x'], envFiles, env: ['C=from flag'] }, clientEnv).env, { A: 'from b', B: 'b=c', TERM: 'xterm', C: 'from flag' });
    usageError(() => buildStartRequest({ command: ['x'], envFiles: [{ file: 'bad.env', text: 'OK=1\nnot a name\n' }] }), /^--env-file: bad\.env:2: expected NAME=VALUE or NAME, got "not a name"$/);
    usageError(() => buildStartRequest({ command: ['x'], env: ['HOME', 'HOME=/x'] }, clientEnv), /^--env: HOME is given twice/);
  });

  it('a bad value is a usage error naming its flag', () => {
    usageError(() => buildStartRequest({ command: [] }), /^COMMAND: give the command/);
    usageError(() => buildStartRequest({ command: ['x'], env: ['A=1', 'A=2'] }), /^--env: A is given twice/);
    usageError(() => buildStartRequest({ command: ['x'], env: ['=1'] }), /^--env: expected NAME=VALUE/);
    usageError(() => buildStartRequest({ command: ['x'], memoryHigh: 'lots' }), /^--memory-high: expected a size/);
    usageError(() => buildStartRequest({ command: ['x'], ioWriteIops: ['1', '2'] }), /^--io-write-iops: device \(the working directory's disk\) is given twice/);
    usageError(() => buildStartRequest({ command: ['x'], cwd: '.' }), /^--cwd: must be an absolute path/);
    usageError(() => buildStartRequest({ command: ['x'], pids: '0' }), /^--pids: must be from 1/);
    usageError(() => buildStartRequest({ command: ['x'], user: '-rf' }), /^--user: expected NAME, UID, NAME:GROUP or UID:GID/);
    usageError(() => buildStartRequest({ command: ['x'], user: '1:99999999999' }), /^--user: expected NAME, UID/);
    usageError(() => buildStartRequest({ command: ['x'], user: '1000:users' }), /^--user: with a UID, the group is a GID/);
    usageError(() => buildStartRequest({ command: ['x'], network: 'bridge' }), /^--network: expected host or none/);
    usageError(() => buildStartRequest({ command: ['x'], mount: ['/a'] }), /^--mount: expected SRC:DST or SRC:DST:ro/);
    usageError(() => buildStartRequest({ command: ['x'], mount: ['a:/b'] }), /^--mount: expected SRC:DST/);
    usageError(() => buildStartRequest({ command: ['x'], mount: ['/a:/b:rx'] }), /^--mount: expected SRC:DST/);
    usageError(() => buildStartRequest({ command: ['x'], hostNamespace: ['net'] }), /^--host-namespace: expected one of pid, mount, cgroup, ipc, uts/);
  });

  it('--user takes NAME, UID, NAME:GROUP or UID:GID', () => {
    assert.deepEqual(buildStartRequest({ command: ['x'], user: '65534' }).user, { uid: 65534, gid: 65534, groups: [] });
    assert.deepEqual(buildStartRequest({ command: ['x'], user: '1000:100' }).user, { uid: 1000, gid: 100, groups: [] });
    const byName = buildStartRequest({ command: ['x'], user: 'postgres' });
    assert.equal(byName.user, undefined);
    assert.equal(byName.userName, 'postgres');
    assert.equal(buildStartRequest({ command: ['x'], user: 'www-data:adm' }).groupName, 'adm');
  });

  it('isolation flags: --network, --mount, --read-only, --host-namespace', () => {
    const request = buildStartRequest({ command: ['x'], network: 'none', mount: ['/srv/data:/data:ro', '/srv/out:/out'], readOnly: true, hostNamespace: ['pid', 'uts'] });
    assert.equal(request.network, 'none');
    assert.deepEqual(request.mounts, [{ source: '/srv/data', target: '/data', readOnly: true }, { source: '/srv/out', target: '/out', readOnly: false }]);
    assert.equal(request.readOnlyRoot, true);
    assert.deepEqual(request.hostNamespaces, ['pid', 'uts']);
    const plain = buildStartRequest({ command: ['x'] });
    assert.equal(plain.network, undefined);
    assert.equal(plain.readOnlyRoot, undefined);
  });

  it('reads signals by name, with or without SIG, in any case, or by number', () => {
    assert.equal(normalizeSignal('TERM'), 'SIGTERM');
    assert.equal(normalizeSignal('sigint'), 'SIGINT');
    assert.equal(normalizeSignal('SIGKILL'), 'SIGKILL');
    assert.equal(normalizeSignal('9'), 'SIGKILL');
    assert.equal(normalizeSignal('NOPE'), undefined);
    assert.equal(normalizeSignal('999'), undefined);
  });
});

describe('daemon errors as people read them', () => {
  const connection = resolveConnection(inputs({ flags: { addr: 'w1:50051' } }));

  it('names flags instead of API fields', () => {
    assert.equal(withFlagNames('limits.cpu: must be at most 4'), '--cpu: must be at most 4');
    assert.equal(withFlagNames('limits.cpu_weight: must be from 1 to 10000'), '--cpu-weight: must be from 1 to 10000');
    assert.equal(withFlagNames('limits.memory_bytes: must be at least 1048576'), '--memory: must be at least 1048576');
    assert.equal(withFlagNames('limits.io[1].write_iops: too low'), '--io-write-iops: too low');
    assert.equal(withFlagNames('cwd: does not exist'), '--cwd: does not exist');
    assert.equal(withFlagNames('mounts[0].source: /var/lib would show /var/lib/jobworker'), '--mount: /var/lib would show /var/lib/jobworker');
    assert.equal(withFlagNames('user_name: no user named "x"'), '--user: no user named "x"');
    assert.equal(withFlagNames('spawn failed at exec of /x: ENOENT'), 'spawn failed at exec of /x: ENOENT');
    assert.equal(
      withFlagNames('limits.memory_high_bytes: must not exceed the hard limit limits.memory_bytes (64 MiB (67108864 bytes)), got 128 MiB (134217728 bytes)'),
      '--memory-high: must not exceed the hard limit --memory (64 MiB (67108864 bytes)), got 128 MiB (134217728 bytes)',
    );
  });

  it('extracts the reason of a failed connection', () => {
    assert.equal(connectionFailureReason('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: '), 'connect ECONNREFUSED 127.0.0.1:1');
    assert.equal(
      connectionFailureReason("No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: vm. (2024-05-01T10:00:00.000Z)"),
      "Hostname/IP does not match certificate's altnames: Host: vm.",
    );
  });

  it('says which role a refused call needs', () => {
    const refused = describeCallError(new ClientError(GrpcStatus.PERMISSION_DENIED, 'rita (role reader) may not call StopJob'), connection);
    assert.equal(refused.message, 'permission denied: rita (role reader) may not call StopJob');
    assert.match(refused.hint!, /^StopJob needs the writer or admin role/);
    const read = describeCallError(new ClientError(GrpcStatus.PERMISSION_DENIED, 'x (no role) may not call GetJob'), connection);
    assert.match(read.hint!, /^GetJob needs the reader, writer or admin role/);
  });

  it('an invalid request is a usage error; other failures exit 1', () => {
    const invalid = describeCallError(new ClientError(GrpcStatus.INVALID_ARGUMENT, 'limits.pids: must be at most 4194304'), connection);
    assert.deepEqual([invalid.message, invalid.exitCode], ['--pids: must be at most 4194304', 2]);
    const busy = describeCallError(new ClientError(GrpcStatus.RESOURCE_EXHAUSTED, '100 jobs are running, the limit is 100'), connection);
    assert.deepEqual([busy.message, busy.exitCode], ['100 jobs are running, the limit is 100', 1]);
    const down = describeCallError(new ClientError(GrpcStatus.UNAVAILABLE, 'the daemon is shutting down'), connection);
    assert.equal(down.message, 'the daemon at w1:50051 is unavailable: the daemon is shutting down');
  });

  it('connection failures: refused, silent, wrong name, untrusted', () => {
    const refused = describeConnectFailure(new ClientError(GrpcStatus.UNAVAILABLE, 'No connection established. Last error: Error: connect ECONNREFUSED 1.2.3.4:50051'), connection, 10_000);
    assert.equal(refused.message, 'cannot connect to the daemon at w1:50051: connect ECONNREFUSED 1.2.3.4:50051');
    assert.match(refused.hint!, /is job-worker running there\? \(the address from --addr/);
    const silent = describeConnectFailure(new ClientError(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded after 10.001s'), connection, 10_000);
    assert.equal(silent.message, 'no answer from the daemon at w1:50051 within 10s');
    const name = describeConnectFailure(new ClientError(GrpcStatus.UNAVAILABLE, "No connection established. Last error: Error: Hostname/IP does not match certificate's altnames: Host: w1."), connection, 10_000);
    assert.match(name.hint!, /does not name the host dialled/);
    const ca = describeConnectFailure(new ClientError(GrpcStatus.UNAVAILABLE, 'No connection established. Last error: Error: self-signed certificate in certificate chain'), connection, 10_000);
    assert.match(ca.hint!, /not issued by the CA in \/home\/u\/\.config\/jobworker\/ca\.pem \(the default CA file\)/);
  });
});
