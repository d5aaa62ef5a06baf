// Spare logs in the state directory (src/worker/state-store.ts): a removed job's small log is cut to
// its header and kept for a new job, a big one is deleted, spares are made ahead when few are left,
// and a spare found at open with old output in it is cut. Plain files: no root needed.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { FILE_HEADER_SIZE } from '../../src/logs/format';
import { StateStore, type StateStoreOptions } from '../../src/worker/state-store';

let dir: string;
const ID = ['0f4e5a8c-1d2b-4c3d-8e9f-a0b1c2d3e4f5', '1f4e5a8c-1d2b-4c3d-8e9f-a0b1c2d3e4f5'] as const;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-spares-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function openStore(options: StateStoreOptions = {}): Promise<StateStore> {
  const store = new StateStore(dir, options);
  await store.init();
  await store.readAll();
  await store.open([]);
  return store;
}

const spares = (): string[] => readdirSync(path.join(dir, 'logs')).filter((name) => name.startsWith('.spare-')).sort();

describe('spare logs', () => {
  it('a small removed log becomes a spare cut to its header; a big one is deleted', async () => {
    const store = await openStore();
    writeFileSync(store.logPath(ID[0]), Buffer.alloc(600, 0x41));
    writeFileSync(store.logPath(ID[1]), Buffer.alloc(2 << 20, 0x42));
    await store.remove(ID[0], { logBytes: 600 });
    await store.remove(ID[1], { logBytes: 2 << 20 });
    assert.equal(existsSync(store.logPath(ID[0])), false);
    assert.equal(existsSync(store.logPath(ID[1])), false);
    assert.deepEqual(spares(), ['.spare-0']);
    assert.equal(statSync(path.join(dir, 'logs', '.spare-0')).size, FILE_HEADER_SIZE);
    assert.equal(store.spareLogs.take(), path.join(dir, 'logs', '.spare-0'));
    assert.equal(store.spareLogs.take(), undefined, 'without createFiles, spares come only from removals');
    await store.close();
  });

  it('spares are made ahead, in one batch, when few are left', async () => {
    const batches: number[] = [];
    const store = await openStore({
      createFiles: async (paths) => {
        batches.push(paths.length);
        for (const file of paths) writeFileSync(file, '', { flag: 'wx' });
        return { completed: paths.length };
      },
    });
    assert.equal(store.spareLogs.take(), undefined, 'none yet: the first start creates its own log');
    await store.close(); // waits for the batch the take started
    assert.deepEqual(batches, [16]);
    assert.equal(spares().length, 16);
  });

  it('a spare found at open with old output in it is cut to its header, and used', async () => {
    const store = await openStore();
    await store.close();
    writeFileSync(path.join(dir, 'logs', '.spare-41'), Buffer.alloc(5000, 0x43));
    const reopened = await openStore();
    assert.equal(statSync(path.join(dir, 'logs', '.spare-41')).size, FILE_HEADER_SIZE);
    assert.equal(reopened.spareLogs.take(), path.join(dir, 'logs', '.spare-41'));
    writeFileSync(reopened.logPath(ID[0]), 'x');
    await reopened.remove(ID[0], { logBytes: 1 });
    assert.ok(spares().includes('.spare-42'), 'new spares are numbered after the ones found');
    await reopened.close();
  });
});
