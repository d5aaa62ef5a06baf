// How job-cli finds and reaches a daemon: unreachable and silent servers (clear message, exit 1,
// bounded time), bad credentials, the precedence of flags / environment / contexts / defaults,
// the contexts file, and listing across several daemons.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';

import type { TlsFilePaths } from '../../src/pki';
import { runCli, show, type CliResult } from '../helpers/cli';
import { leftoverCgroups, startTlsDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { craftCertificate, createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';

let pki: TestPki;
let admin: TlsFilePaths;
let home: string;

function envFor(files: TlsFilePaths, address: string): Record<string, string> {
  return { JOBWORKER_ADDR: address, JOBWORKER_CA: files.caPath, JOBWORKER_CERT: files.certificatePath, JOBWORKER_KEY: files.privateKeyPath };
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(args, { home, env });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

before(async () => {
  pki = await createTestPki();
  admin = await pki.client({ name: 'ada', roles: ['admin'] });
});
after(() => pki?.remove());
beforeEach(() => {
  home = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-conn-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('reaching a daemon', () => {
  it('nothing listening: a clear message, exit 1, at once', async () => {
    const probe = createServer();
    const port = await listen(probe);
    await close(probe); // the port is free now: connections are refused
    const result = await cli(['list'], envFor(admin, `localhost:${port}`));
    assert.equal(result.code, 1, show(result));
    assert.match(result.stderr, new RegExp(`^job-cli: cannot connect to the daemon at localhost:${port}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\nhint: is job-worker running there\\? \\(the address from JOBWORKER_ADDR`));
    assert.ok(result.ms < 5000, `took ${result.ms} ms`);
  });

  it('a server that never answers: exit 1 after --timeout, for unary calls and streams alike', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket); // accept, then say nothing: the TLS handshake never completes
      socket.on('close', () => sockets.delete(socket));
    });
    const port = await listen(silent);
    try {
      for (const args of [['list'], ['stream', '00000000-0000-4000-8000-000000000000'], ['run', '--', 'true']]) {
        const result = await cli([args[0]!, '--timeout', '1s', ...args.slice(1)], envFor(admin, `localhost:${port}`));
        assert.equal(result.code, 1, show(result));
        assert.match(result.stderr, new RegExp(`^job-cli: no answer from the daemon at localhost:${port} within 1s\\n`), show(result));
        assert.ok(result.ms < 6000, `${args[0]} took ${result.ms} ms`);
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await close(silent);
    }
  });

  it('an expired client certificate: the loader\'s message, naming the file and the fix', async () => {
    const expired = await pki.write(
      await craftCertificate({
        subject: [{ CN: ['old-timer'] }],
        issuer: pki.ca,
        roles: ['admin'],
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      }),
      'expired-client',
    );
    const result = await cli(['list'], envFor(expired, 'localhost:1'));
    assert.equal(result.code, 1, show(result));
    assert.match(
      result.stderr,
      /^job-cli: client certificate \S+expired-client\.pem: expired on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; issue a new one with `job-worker pki client \.\.\.`\nhint: this path comes from JOBWORKER_CERT\n$/,
    );
  });

  it('no credentials anywhere: says where it looked and how to get some', async () => {
    const result = await cli(['list']);
    assert.equal(result.code, 1, show(result));
    assert.equal(
      result.stderr,
      `job-cli: CA certificate ${home}/.config/jobworker/ca.pem: file not found\n` +
        'hint: no credentials in the default place yet: start a dev daemon once (`npm start` or `job-worker --dev`), or give --ca/--cert/--key, JOBWORKER_CA/_CERT/_KEY or a context\n',
    );
  });
});

describe('contexts', () => {
  const contextsFile = () => path.join(home, '.config', 'jobworker', 'contexts.json');

  it('add, ls, use, show, rm; saved 0600 with absolute paths', async () => {
    const relative = (file: string) => path.relative(process.cwd(), file);
    const add = await runCli(['context', 'add', 'east', '--addr', 'east.example', '--ca', relative(admin.caPath), '--cert', relative(admin.certificatePath), '--key', relative(admin.privateKeyPath)], { home, cwd: process.cwd() });
    assert.equal(add.code, 0, show(add));
    assert.match(add.stdout, /^context east saved \(east\.example:50051\); `job-cli context use east` makes it the current one\n$/);
    assert.equal(statSync(contextsFile()).mode & 0o777, 0o600);
    const saved = JSON.parse(readFileSync(contextsFile(), 'utf8')) as { current?: string; contexts: Record<string, Record<string, string>> };
    assert.deepEqual(saved, { contexts: { east: { address: 'east.example:50051', ca: admin.caPath, cert: admin.certificatePath, key: admin.privateKeyPath } } });

    const addWest = await cli(['context', 'add', 'west', '--addr', '[::1]:7000', '--ca', admin.caPath, '--cert', admin.certificatePath, '--key', admin.privateKeyPath, '--use', '--json']);
    assert.equal(addWest.code, 0, show(addWest));
    assert.deepEqual(JSON.parse(addWest.stdout), { name: 'west', current: true, address: '[::1]:7000', ca: admin.caPath, cert: admin.certificatePath, key: admin.privateKeyPath });

    const ls = await cli(['context', 'ls']);
    assert.equal(ls.code, 0, show(ls));
    assert.match(ls.stdout, /^NAME +ADDRESS +CERTIFICATE\ndefault +localhost:50051 +\S+\/\.config\/jobworker\/cert\.pem\neast +east\.example:50051 +\S+\nwest \* +\[::1\]:7000 +\S+\n$/);
    const lsJson = JSON.parse((await cli(['context', 'ls', '--json'])).stdout) as { name: string; current: boolean }[];
    assert.deepEqual(lsJson.map((c) => [c.name, c.current]), [['default', false], ['east', false], ['west', true]]);

    const use = await cli(['context', 'use', 'east']);
    assert.equal(use.code, 0, show(use));
    assert.equal(use.stdout, 'using context east (east.example:50051)\n');
    const rm = await cli(['context', 'rm', 'east']);
    assert.equal(rm.code, 0, show(rm));
    assert.equal(rm.stdout, 'context east removed; using context default\n');
    const after = JSON.parse(readFileSync(contextsFile(), 'utf8')) as { current?: string; contexts: Record<string, unknown> };
    assert.equal(after.current, undefined);
    assert.deepEqual(Object.keys(after.contexts), ['west']);
    assert.equal(statSync(contextsFile()).mode & 0o777, 0o600);
  });

  it('refuses bad contexts, saving nothing', async () => {
    const files = ['--ca', admin.caPath, '--cert', admin.certificatePath, '--key', admin.privateKeyPath];
    const reserved = await cli(['context', 'add', 'default', '--addr', 'x:1', ...files]);
    assert.equal(reserved.code, 2, show(reserved));
    assert.match(reserved.stderr, /NAME: "default" is the built-in context/);
    const badName = await cli(['context', 'add', 'no/slashes', '--addr', 'x:1', ...files]);
    assert.equal(badName.code, 2, show(badName));
    const missing = await cli(['context', 'add', 'partial', '--addr', 'x:1', '--ca', admin.caPath]);
    assert.equal(missing.code, 2, show(missing));
    assert.match(missing.stderr, /^job-cli: --cert: is required/);
    const wrongFile = await cli(['context', 'add', 'swapped', '--addr', 'x:1', '--ca', admin.caPath, '--cert', admin.privateKeyPath, '--key', admin.privateKeyPath]);
    assert.equal(wrongFile.code, 1, show(wrongFile));
    assert.match(wrongFile.stderr, /^job-cli: client certificate \S+: contains no PEM certificate.*\nhint: the context was not saved\n$/);
    assert.equal(existsSync(contextsFile()), false);
    const unknown = await cli(['context', 'use', 'nowhere']);
    assert.equal(unknown.code, 2, show(unknown));
    assert.match(unknown.stderr, /^job-cli: NAME: no context named "nowhere"/);

    assert.equal((await cli(['context', 'add', 'once', '--addr', 'x:1', ...files])).code, 0);
    const twice = await cli(['context', 'add', 'once', '--addr', 'y:2', ...files]);
    assert.equal(twice.code, 1, show(twice));
    assert.match(twice.stderr, /context once already exists\nhint: give --force to replace it/);
    assert.equal((await cli(['context', 'add', 'once', '--addr', 'y:2', '--force', ...files])).code, 0);
    const replaced = JSON.parse((await cli(['context', 'ls', '--json'])).stdout) as { name: string; address: string }[];
    assert.equal(replaced.find((c) => c.name === 'once')?.address, 'y:2');
  });

  it('precedence: flags, then JOBWORKER_*, then the context (--context, JOBWORKER_CONTEXT, current), then the defaults', async () => {
    const other = await pki.client({ name: 'bob', roles: ['reader'] });
    const files = (f: TlsFilePaths) => ['--ca', f.caPath, '--cert', f.certificatePath, '--key', f.privateKeyPath];
    assert.equal((await cli(['context', 'add', 'ctx', '--addr', 'ctx.example:1', ...files(admin), '--use'])).code, 0);
    assert.equal((await cli(['context', 'add', 'alt', '--addr', 'alt.example:2', ...files(other)])).code, 0);
    const showJson = async (args: string[], env: Record<string, string> = {}) => {
      const result = await cli(['context', 'show', '--json', ...args], env);
      assert.equal(result.code, 0, show(result));
      return JSON.parse(result.stdout) as { context: string; address: string; cert: string; sources: Record<string, string> };
    };

    let shown = await showJson([]);
    assert.deepEqual([shown.context, shown.address, shown.cert, shown.sources], [
      'ctx', 'ctx.example:1', admin.certificatePath,
      { context: 'the current context', address: 'context ctx', ca: 'context ctx', cert: 'context ctx', key: 'context ctx' },
    ]);
    shown = await showJson([], { JOBWORKER_CONTEXT: 'alt' });
    assert.deepEqual([shown.context, shown.address, shown.sources.context], ['alt', 'alt.example:2', 'JOBWORKER_CONTEXT']);
    shown = await showJson(['--context', 'default'], { JOBWORKER_CONTEXT: 'alt' });
    assert.deepEqual([shown.context, shown.address, shown.cert, shown.sources.address], ['default', 'localhost:50051', path.join(home, '.config/jobworker/cert.pem'), 'default']);
    shown = await showJson([], { JOBWORKER_ADDR: 'env.example:3', JOBWORKER_CERT: other.certificatePath });
    assert.deepEqual([shown.address, shown.cert, shown.sources.address, shown.sources.cert, shown.sources.key], ['env.example:3', other.certificatePath, 'JOBWORKER_ADDR', 'JOBWORKER_CERT', 'context ctx']);
    shown = await showJson(['--addr', 'flag.example:4'], { JOBWORKER_ADDR: 'env.example:3' });
    assert.deepEqual([shown.address, shown.sources.address], ['flag.example:4', '--addr']);
    shown = await showJson(['alt', '--addr', 'flag.example:4']);
    assert.deepEqual([shown.context, shown.address, shown.cert], ['alt', 'flag.example:4', other.certificatePath]);

    const human = await cli(['context', 'show'], { JOBWORKER_ADDR: 'env.example:3' });
    assert.match(human.stdout, /^address +env\.example:3 +\(from JOBWORKER_ADDR\)$/m);
    assert.match(human.stdout, /^context +ctx +\(from the current context\)$/m);

    const gone = await cli(['context', 'show', '--context', 'nope']);
    assert.equal(gone.code, 2, show(gone));
    assert.match(gone.stderr, /^job-cli: --context: no context named "nope" \(known: default, alt, ctx\)\nhint: `job-cli context ls` lists them\n$/);
  });

  it('lives in $XDG_CONFIG_HOME/jobworker when that is set', async () => {
    const xdg = path.join(home, 'xdg');
    const result = await cli(['context', 'add', 'x', '--addr', 'x:1', '--ca', admin.caPath, '--cert', admin.certificatePath, '--key', admin.privateKeyPath], { XDG_CONFIG_HOME: xdg });
    assert.equal(result.code, 0, show(result));
    assert.ok(existsSync(path.join(xdg, 'jobworker', 'contexts.json')));
    assert.equal(existsSync(contextsFile()), false);
  });
});

describe('several daemons', requireRoot, () => {
  let dir: string;
  let east: RunningTestDaemon;
  let west: RunningTestDaemon;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-hosts-'));
    [east, west] = await Promise.all([
      startTlsDaemon('cli-east', await pki.server(), dir, mkdtempSync(path.join(dir, 'state-'))),
      startTlsDaemon('cli-west', await pki.server(), dir, mkdtempSync(path.join(dir, 'state-'))),
    ]);
  });
  after(async () => {
    await Promise.all([east?.stop(), west?.stop()]);
    rmSync(dir, { recursive: true, force: true });
    for (const daemon of [east, west]) if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  it('contexts pick the daemon; list --context a --context b / --all-contexts shows jobs of both with a HOST column', async () => {
    const files = ['--ca', admin.caPath, '--cert', admin.certificatePath, '--key', admin.privateKeyPath];
    assert.equal((await cli(['context', 'add', 'east', '--addr', east.address, ...files])).code, 0);
    assert.equal((await cli(['context', 'add', 'west', '--addr', west.address, ...files, '--use'])).code, 0);
    const onEast = await cli(['start', '--context', 'east', '--', 'sleep', '60']);
    assert.equal(onEast.code, 0, show(onEast));
    const onWest = await cli(['start', '--', 'sleep', '60']); // the current context: west
    assert.equal(onWest.code, 0, show(onWest));
    const eastId = onEast.stdout.trim();
    const westId = onWest.stdout.trim();

    const westOnly = JSON.parse((await cli(['list', '--json'])).stdout) as { id: string }[];
    assert.deepEqual(westOnly.map((job) => job.id), [westId]);

    const both = await cli(['list', '--context', 'east', '--context', 'west']);
    assert.equal(both.code, 0, show(both));
    assert.match(both.stdout, /^HOST +ID +NAME +STATE +EXIT +CREATED +DURATION +OWNER +COMMAND$/m);
    assert.match(both.stdout, new RegExp(`^east +${eastId} +- +running `, 'm'));
    assert.match(both.stdout, new RegExp(`^west +${westId} +- +running `, 'm'));

    const all = await cli(['list', '--all-contexts', '--json']);
    assert.equal(all.code, 0, show(all));
    const jobs = JSON.parse(all.stdout) as { id: string; context: string }[];
    assert.deepEqual(jobs.map((job) => [job.context, job.id]).sort(), [['east', eastId], ['west', westId]].sort());

    // One host down: the others are still listed, the failure is reported, exit 1.
    const probe = createServer();
    const port = await listen(probe);
    await close(probe);
    assert.equal((await cli(['context', 'add', 'dead', '--addr', `localhost:${port}`, ...files])).code, 0);
    const partial = await cli(['list', '--all-contexts']);
    assert.equal(partial.code, 1, show(partial));
    assert.match(partial.stdout, new RegExp(`^east +${eastId} `, 'm'));
    assert.match(partial.stdout, new RegExp(`^west +${westId} `, 'm'));
    assert.match(partial.stderr, new RegExp(`^job-cli: context dead \\(localhost:${port}\\): cannot connect to the daemon at localhost:${port}: connect ECONNREFUSED`, 'm'));

    const mixed = await cli(['list', '--context', 'east', '--context', 'west', '--addr', east.address]);
    assert.equal(mixed.code, 2, show(mixed));
    assert.match(mixed.stderr, /^job-cli: --addr: cannot be combined with several contexts/);

    assert.equal((await cli(['stop', '--context', 'east', eastId])).code, 0);
    assert.equal((await cli(['stop', westId])).code, 0);
  });
});
