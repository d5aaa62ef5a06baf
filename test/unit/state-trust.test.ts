// Trust in the state directory (src/worker/state-dir.ts, state-files.ts): created 0700, refused when
// someone else could write it or a directory above it, and no file in it opened through a link —
// the journal, its temp file, spares, logs — so a daemon running as root never writes, truncates
// or reads another file through a link planted there. Plain files; the ownership cases need root.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { JobworkerError } from '../../src/errors';
import { FILE_HEADER_SIZE } from '../../src/logs/format';
import { openLog } from '../../src/logs/reader';
import { repairLog } from '../../src/logs/repair';
import { StateStore } from '../../src/worker/state-store';
import { requireRoot } from '../helpers/root';

let base: string;
let precious: string;
const PRECIOUS = 'precious bytes, not the daemon’s\n';
const ID = '0f4e5a8c-1d2b-4c3d-8e9f-a0b1c2d3e4f5';

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'jobworker-trust-'));
  precious = path.join(base, 'precious');
  writeFileSync(precious, PRECIOUS);
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

async function open(stateDir: string): Promise<StateStore> {
  const store = new StateStore(stateDir);
  await store.init();
  const contents = await store.readAll();
  await store.open(contents.journal.records.values());
  return store;
}

function refusal(pattern: RegExp) {
  return (error: unknown) => error instanceof JobworkerError && error.kind === 'failed-precondition' && pattern.test(error.message);
}

describe('state directory trust', () => {
  it('is created 0700 (with its missing parents), logs/ too', async () => {
    const dir = path.join(base, 'a', 'b', 'state');
    const store = await open(dir);
    for (const d of [path.join(base, 'a'), path.join(base, 'a', 'b'), dir, path.join(dir, 'logs')]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
    await store.close();
  });

  it('an existing one writable by group or others is refused, naming the path, the mode and the fix; nothing is touched', async () => {
    const dir = path.join(base, 'state');
    mkdirSync(dir);
    chmodSync(dir, 0o770);
    await assert.rejects(open(dir), refusal(new RegExp(`state directory ${dir} is owned by uid \\d+ with mode 0770.*Fix: chown \\d+ ${dir} && chmod 0700 ${dir}`)));
    assert.equal(existsSync(path.join(dir, 'journal')), false);
    chmodSync(dir, 0o700);
    mkdirSync(path.join(dir, 'logs'), { mode: 0o777 });
    chmodSync(path.join(dir, 'logs'), 0o777);
    await assert.rejects(open(dir), refusal(/logs directory .* with mode 0777/));
  });

  it('one owned by another user is refused', requireRoot, async () => {
    const dir = path.join(base, 'state');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    await assert.rejects(open(dir), refusal(/is owned by uid 65534 with mode 0700; it must be owned by uid 0/));
    assert.equal(existsSync(path.join(dir, 'logs')), false, 'nothing created in it');
  });

  it('a directory above it that others may write (not sticky) or that another user owns is refused; a sticky one (/tmp) is fine', requireRoot, async () => {
    const parent = path.join(base, 'shared');
    mkdirSync(parent);
    chmodSync(parent, 0o777);
    await assert.rejects(open(path.join(parent, 'state')), refusal(new RegExp(`the directory ${parent} above it is owned by uid 0 with mode 0777.*chmod go-w ${parent}`)));
    chmodSync(parent, 0o1777);
    (await open(path.join(parent, 'state'))).close();
    chmodSync(parent, 0o755);
    chownSync(parent, 65534, 65534);
    await assert.rejects(open(path.join(parent, 'state2')), refusal(/above it is owned by uid 65534/));
  });

  it('a state directory or logs/ that is a link: the link to a good directory is followed for the directory only; logs/ as a link is refused', async () => {
    const real = path.join(base, 'real');
    mkdirSync(real, { mode: 0o700 });
    const link = path.join(base, 'link');
    symlinkSync(real, link);
    (await open(link)).close();
    assert.ok(existsSync(path.join(real, 'journal')));
    const other = path.join(base, 'other');
    mkdirSync(other, { mode: 0o700 });
    rmSync(path.join(real, 'logs'), { recursive: true });
    symlinkSync(other, path.join(real, 'logs'));
    await assert.rejects(open(real), refusal(/logs directory .* is a symbolic link/));
  });
});

describe('no link is followed in the state directory', () => {
  it('the journal as a link: refused at open, naming it; the file it points to untouched', async () => {
    const dir = path.join(base, 'state');
    (await open(dir)).close();
    rmSync(path.join(dir, 'journal'));
    symlinkSync(precious, path.join(dir, 'journal'));
    await assert.rejects(open(dir), refusal(new RegExp(`read journal ${dir}/journal: it is a symbolic link`)));
    assert.equal(readFileSync(precious, 'utf8'), PRECIOUS);
  });

  it('the journal temp file as a link: the link is removed, the file it points to untouched', async () => {
    const dir = path.join(base, 'state');
    (await open(dir)).close();
    symlinkSync(precious, path.join(dir, 'journal.tmp'));
    const store = await open(dir);
    await store.close();
    assert.equal(readFileSync(precious, 'utf8'), PRECIOUS);
    assert.equal(existsSync(path.join(dir, 'journal.tmp')), false);
    assert.equal(lstatSync(path.join(dir, 'journal')).isFile(), true);
  });

  it('spares that are links (symbolic or hard) are removed at open, never cut', async () => {
    const dir = path.join(base, 'state');
    (await open(dir)).close();
    symlinkSync(precious, path.join(dir, 'logs', '.spare-0'));
    linkSync(precious, path.join(dir, 'logs', '.spare-1'));
    const store = await open(dir);
    assert.equal(readFileSync(precious, 'utf8'), PRECIOUS);
    assert.equal(store.spareLogs.take(), undefined, 'neither became a spare');
    assert.equal(existsSync(path.join(dir, 'logs', '.spare-0')), false);
    assert.equal(existsSync(path.join(dir, 'logs', '.spare-1')), false);
    await store.close();
  });

  it('removing a job whose log is a link, or a hard link: the file it points to is untouched', async () => {
    const dir = path.join(base, 'state');
    const store = await open(dir);
    symlinkSync(precious, store.logPath(ID));
    await store.remove(ID, { logBytes: 100 });
    linkSync(precious, store.logPath(ID));
    await store.remove(ID, { logBytes: 100 });
    assert.equal(readFileSync(precious, 'utf8'), PRECIOUS);
    assert.equal(store.spareLogs.take(), undefined);
    await store.close();
  });

  it('a log that is a link is neither read nor repaired through it (a corrupt log: DATA_LOSS)', async () => {
    const log = path.join(base, 'job.log');
    writeFileSync(precious, Buffer.concat([Buffer.from('JWLOG\0\r\n'), Buffer.from([16, 0, 0, 0, 1, 0, 0, 0]), Buffer.from('torn tail')]));
    symlinkSync(precious, log);
    await assert.rejects(openLog(log), { name: 'CorruptLogError', message: /is a symbolic link, not a log/ });
    await assert.rejects(repairLog(log), { name: 'CorruptLogError' });
    assert.equal(statSync(precious).size, FILE_HEADER_SIZE + 'torn tail'.length, 'not cut');
  });
});
