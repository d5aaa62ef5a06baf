// Device resolution against this host's real /sys and /dev (no root needed). Host-agnostic: it finds
// the disks, partitions and virtual devices there are, and skips (saying why) what a host lacks.
// The fake-sysfs unit tests cover every case on every host.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { deviceId, resolveBlockDevice } from '../../src/cgroup/devices';
import { ValidationError } from '../../src/errors';

function sysBlock(): string[] {
  return existsSync('/sys/block') ? readdirSync('/sys/block') : [];
}

function devOf(sysDir: string): string {
  return readFileSync(path.join(sysDir, 'dev'), 'utf8').trim();
}

/** The first filesystem path among these that sits on a real disk, with that disk. */
async function pathOnDisk(): Promise<{ where: string; disk: Awaited<ReturnType<typeof resolveBlockDevice>> } | undefined> {
  for (const where of ['/', tmpdir(), '/var/tmp', process.cwd()]) {
    try {
      return { where, disk: await resolveBlockDevice(where, '/') };
    } catch {
      // not on a disk
    }
  }
  return undefined;
}

function isRefused(reason: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof ValidationError, String(error));
    assert.equal(error.kind, 'invalid-argument');
    assert.match(error.message, reason);
    return true;
  };
}

describe('device resolution on this host', () => {
  it('a path resolves to the whole disk its filesystem is on; that disk\'s node and MAJ:MIN to itself', async (t) => {
    const found = await pathOnDisk();
    if (found === undefined) return t.skip('no filesystem here is on a physical disk');
    const { where, disk } = found;
    t.diagnostic(`${where} is on ${disk.name} (${deviceId(disk)})`);
    assert.ok(existsSync(path.join('/sys/block', disk.name)), 'a whole disk (listed in /sys/block)');
    assert.equal(devOf(path.join('/sys/block', disk.name)), deviceId(disk));
    assert.deepEqual(await resolveBlockDevice(deviceId(disk), '/'), disk);
    assert.deepEqual(await resolveBlockDevice(undefined, where), disk, 'the default: the disk behind the working directory');
    const node = path.join('/dev', disk.name);
    if (existsSync(node)) assert.deepEqual(await resolveBlockDevice(node, '/'), disk);
  });

  it('a partition resolves to its parent disk', async (t) => {
    for (const name of sysBlock()) {
      const diskDir = path.join('/sys/block', name);
      const partition = readdirSync(diskDir).find((entry) => existsSync(path.join(diskDir, entry, 'partition')));
      if (partition === undefined) continue;
      const disk = await resolveBlockDevice(devOf(path.join(diskDir, partition)), '/');
      assert.equal(disk.name, name);
      assert.equal(deviceId(disk), devOf(diskDir));
      const node = path.join('/dev', partition);
      if (existsSync(node)) assert.deepEqual(await resolveBlockDevice(node, '/'), disk);
      return;
    }
    t.skip('no partitioned disk on this host (the fake-sysfs unit test covers it)');
  });

  it('zram and loop devices are refused with a clear reason', async (t) => {
    const virtual = sysBlock().filter((name) => /^(zram|loop)\d+$/.test(name));
    if (virtual.length === 0) return t.skip('no zram or loop device on this host');
    for (const name of virtual.slice(0, 4)) {
      const kind = name.startsWith('zram') ? /a compressed RAM disk \(zram\): IO limits need a physical disk/ : /a loop device: IO limits need a physical disk/;
      const node = path.join('/dev', name);
      await assert.rejects(resolveBlockDevice(existsSync(node) ? node : devOf(path.join('/sys/block', name)), '/'), isRefused(kind));
    }
  });

  it('what is not a block device is refused, naming what it is', async () => {
    await assert.rejects(resolveBlockDevice('/dev/null', '/'), isRefused(/\/dev\/null is a character device, not a block device/));
    await assert.rejects(resolveBlockDevice('/no/such/disk', '/'), isRefused(/\/no\/such\/disk does not exist/));
    await assert.rejects(resolveBlockDevice('/proc/self', '/'), isRefused(/\/proc\/self is on device 0:\d+, which is not a block device/));
    await assert.rejects(resolveBlockDevice(undefined, '/proc'), isRefused(/the working directory \/proc is on device 0:\d+/));
    await assert.rejects(resolveBlockDevice('4095:1048575', '/'), isRefused(/4095:1048575 is not a block device known to this kernel/));
  });
});
