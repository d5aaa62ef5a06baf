// job-worker's command line without a daemon: `pki --help` for the group, did-you-mean, and the pki
// commands' flags as people type them (`--role a,b`, a refusal to overwrite that names --force).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CliProcess, show, type CliResult } from '../helpers/cli';
import { WORKER_BIN } from '../helpers/spawned-daemon';
import '../../src/pki/keys'; // @peculiar/x509 setup

import * as x509 from '@peculiar/x509';

import { identityFromCertificate } from '../../src/pki';

let home: string;

function worker(args: string[]): Promise<CliResult> {
  return new CliProcess(process.execPath, [WORKER_BIN, ...args], { home, cwd: home }).result;
}

describe('job-worker usage', () => {
  before(() => {
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-worker-usage-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  it('`pki --help` lists the pki commands; `pki` alone is a usage error listing them', async () => {
    const help = await worker(['pki', '--help']);
    assert.equal(help.code, 0, show(help));
    for (const command of ['ca', 'server', 'client']) assert.match(help.stdout, new RegExp(`^ {2}job-worker pki ${command} +[A-Z]`, 'm'), show(help));
    const bare = await worker(['pki']);
    assert.equal(bare.code, 2, show(bare));
    assert.match(bare.stderr, /^job-worker pki needs one of these commands\n/);
    const one = await worker(['pki', 'client', '--help']);
    assert.equal(one.code, 0, show(one));
    assert.match(one.stdout, /--role/);
  });

  it('did-you-mean for a misspelled flag or command', async () => {
    const flag = await worker(['--lisen', '127.0.0.1:1']);
    assert.equal(flag.code, 2, show(flag));
    assert.match(flag.stderr, /^job-worker: unknown option --lisen; did you mean --listen\?\n/);
    const command = await worker(['pki', 'clinet']);
    assert.equal(command.code, 2, show(command));
    assert.match(command.stderr, /^job-worker: unknown command "pki clinet"; did you mean "job-worker pki client"\?\n/);
  });

  it('`--role reader,writer` grants both; a file in the way is refused with a hint naming --force', async () => {
    const out = path.join(home, 'pki');
    assert.equal((await worker(['pki', 'ca', '--out', out])).code, 0);
    const issued = await worker(['pki', 'client', '--ca-dir', out, '--name', 'ci', '--role', 'reader,writer', '--role', 'reader', '--out', out]);
    assert.equal(issued.code, 0, show(issued));
    assert.match(issued.stdout, /client certificate for ci \(reader, writer\) written/);
    const roles = identityFromCertificate(new x509.X509Certificate(readFileSync(path.join(out, 'ci.pem'), 'utf8'))).roles;
    assert.deepEqual([...roles].sort(), ['reader', 'writer']);

    const again = await worker(['pki', 'ca', '--out', out]);
    assert.equal(again.code, 1, show(again));
    assert.equal(again.stderr, `job-worker: ${path.join(out, 'ca-key.pem')} already exists; refusing to overwrite it\nhint: give --force to replace the files (a new key and certificate replace the old ones atomically)\n`);
    assert.equal((await worker(['pki', 'ca', '--out', out, '--force'])).code, 0);

    const bad = await worker(['pki', 'client', '--ca-dir', out, '--name', 'x', '--role', 'reader,root', '--out', out]);
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /^job-worker: --role: unknown role "root"; expected reader, writer, admin\n/);
  });
});
