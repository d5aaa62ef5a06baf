// readCached (preadv2 RWF_NOWAIT on the JS thread) against the real page cache, and the log reader
// that uses it: bytes the cache holds come back at once; bytes it does not hold (dropped with
// `dd iflag=nocache`) are refused with null, and the reader then gets them the usual way.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { openLog, readRecords } from '../../src/logs/reader';
import { readCached } from '../../src/native';
import { fileHeader, record } from '../helpers/log-files';

const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-read-cached-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function fileWith(bytes: Buffer): string {
  const file = path.join(dir, `file-${n++}`);
  writeFileSync(file, bytes);
  const fd = openSync(file, 'r');
  fsyncSync(fd); // clean pages: only clean pages can be dropped
  closeSync(fd);
  return file;
}

/** Asks the kernel to drop `file`'s pages from the cache; true if a read would now have to wait. */
function dropFromCache(file: string): boolean {
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  const fd = openSync(file, 'r');
  try {
    return readCached(fd, Buffer.alloc(1), 0, 1, 0) === null;
  } finally {
    closeSync(fd);
  }
}

const pattern = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff));

/** Whether this filesystem answers RWF_NOWAIT reads at all (some FUSE, NFS and overlay setups do not). */
const nowaitSupported = (() => {
  const fd = openSync(fileWith(pattern(16)), 'r');
  try {
    return readCached(fd, Buffer.alloc(16), 0, 16, 0) === 16;
  } finally {
    closeSync(fd);
  }
})();
const needsNowait = nowaitSupported ? {} : { skip: `the filesystem under ${dir} does not answer RWF_NOWAIT reads (the reader falls back to async reads there)` };

describe('readCached', () => {
  it('reads what the page cache holds, at any position, into any view; 0 at the end of the file', needsNowait, () => {
    const bytes = pattern(300_000);
    const fd = openSync(fileWith(bytes), 'r');
    try {
      // A view that starts inside its ArrayBuffer: offsets count from the view.
      const view = new Uint8Array(new ArrayBuffer(1000), 100, 800);
      assert.equal(readCached(fd, view, 8, 16, 1000), 16);
      assert.deepEqual(Buffer.from(view.buffer, 108, 16), bytes.subarray(1000, 1016));
      assert.equal(new Uint8Array(view.buffer)[107], 0, 'nothing written before the view\'s offset');
      const buffer = Buffer.alloc(200_000, 0xee);
      assert.equal(readCached(fd, buffer, 10, 100_000, 123_456), 100_000);
      assert.deepEqual(buffer.subarray(10, 100_010), bytes.subarray(123_456, 223_456));
      assert.equal(buffer[9], 0xee, 'nothing written before the offset');
      assert.equal(buffer[100_010], 0xee, 'nothing written past the length');
      assert.equal(readCached(fd, buffer, 0, 1000, 299_500), 500, 'a read past the end is short');
      assert.equal(readCached(fd, buffer, 0, 1000, 300_000), 0);
    } finally {
      closeSync(fd);
    }
  });

  it('refuses a range outside the buffer or a negative position, before reading anything', () => {
    const fd = openSync(fileWith(pattern(10)), 'r');
    try {
      const buffer = Buffer.alloc(8);
      assert.throws(() => readCached(fd, buffer, 4, 5, 0), RangeError);
      assert.throws(() => readCached(fd, buffer, -1, 2, 0), RangeError);
      assert.throws(() => readCached(fd, buffer, 0, 2, -1), RangeError);
    } finally {
      closeSync(fd);
    }
  });

  it('answers null for a bad fd (the usual read then reports the error)', () => {
    assert.equal(readCached(1_000_000, Buffer.alloc(4), 0, 4, 0), null);
  });

  it('answers null, never waiting, for pages the cache does not hold', needsNowait, (t) => {
    const file = fileWith(pattern(1 << 20));
    if (!dropFromCache(file)) return t.skip(`the filesystem under ${dir} kept the file cached (tmpfs?): nothing to drop`);
    const fd = openSync(file, 'r');
    try {
      // Dropping is advice: under load the kernel sometimes keeps a page of the file (the probe above
      // looked at the first one only). So drop again while the page read here is still cached; a
      // readCached that waited for the disk would answer 4096 every time.
      const answers: (number | null)[] = [];
      for (let attempt = 0; attempt < 5 && answers.at(-1) !== null; attempt++) {
        if (attempt > 0) dropFromCache(file);
        answers.push(readCached(fd, Buffer.alloc(4096), 0, 4096, 512 << 10));
      }
      assert.equal(answers.at(-1), null, `answers: ${answers.join(', ')}`);
    } finally {
      closeSync(fd);
    }
  });
});

describe('readRecords with pages in and out of the cache', () => {
  it('yields the same records whether the log is cached or was dropped from the cache', async (t) => {
    const records = Array.from({ length: 200 }, (_, i) => pattern(4000 + i * 37).subarray(i % 3));
    const file = fileWith(Buffer.concat([fileHeader(), ...records.map((data, i) => record(i % 2 === 0 ? 1 : 2, data))]));
    const read = async (): Promise<Buffer[]> => {
      const log = await openLog(file);
      try {
        const out: Buffer[] = [];
        for await (const r of readRecords(log)) out.push(Buffer.from(r.data));
        return out;
      } finally {
        await log.close();
      }
    };
    assert.deepEqual(await read(), records, 'from the cache');
    if (!dropFromCache(file)) return t.skip(`the filesystem under ${dir} kept the file cached (tmpfs?): nothing to drop`);
    assert.deepEqual(await read(), records, 'from the disk, through the threadpool');
  });
});
