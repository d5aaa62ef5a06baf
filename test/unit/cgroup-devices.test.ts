// Device resolution against a fake sysfs tree shaped like the real one: /sys/dev/block/MAJ:MIN are
// symlinks into /sys/devices/…/block/<disk>[/<partition>]; virtual devices live in
// /sys/devices/virtual/block.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { resolveBlockDevice, resolveIoLimits } from '../../src/cgroup/devices';
import { ValidationError } from '../../src/errors';

let sys: string;
let work: string;
let fileDev: string;

function device(sysPath: string, dev: string, partition = false): void {
  const dir = path.join(sys, 'devices', sysPath);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'dev'), `${dev}\n`);
  if (partition) writeFileSync(path.join(dir, 'partition'), '1\n');
  symlinkSync(path.join('../../devices', sysPath), path.join(sys, 'dev/block', dev));
}

before(() => {
  sys = mkdtempSync(path.join(tmpdir(), 'jobworker-fake-sys-'));
  work = mkdtempSync(path.join(tmpdir(), 'jobworker-devices-'));
  mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
  const sata = 'pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda';
  device(sata, '8:0');
  device(`${sata}/sda1`, '8:1', true);
  device('pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1', '259:0');
  device('pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1/nvme0n1p2', '259:2', true);
  device('virtual/block/loop0', '7:0');
  device('virtual/block/zram0', '253:0');
  device('virtual/block/dm-1', '252:1');
  // /sys/block lists whole disks, virtual ones included.
  mkdirSync(path.join(sys, 'block'));
  for (const disk of [sata, 'pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1', 'virtual/block/loop0']) {
    symlinkSync(path.join('../devices', disk), path.join(sys, 'block', path.basename(disk)));
  }
  // The disk behind our temporary directory, whatever the real one is: partition 2 of "vdz".
  const { dev } = statSync(work, { bigint: true });
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn & 0xffffffffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xffffffffn));
  fileDev = `${major}:${minor}`;
  device('pci0000:00/0000:00:05.0/virtio2/block/vdz', '250:0');
  device('pci0000:00/0000:00:05.0/virtio2/block/vdz/vdz2', fileDev, true);
});

after(() => {
  rmSync(sys, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function refused(promise: Promise<unknown>, reason: RegExp, field = 'device'): Promise<void> {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ValidationError, String(error));
    assert.equal(error.field, field);
    assert.match(error.message, reason);
    return true;
  });
}

describe('resolveBlockDevice', () => {
  it('a partition resolves to its whole disk', async () => {
    assert.deepEqual(await resolveBlockDevice('8:1', '/', { sysRoot: sys }), { major: 8, minor: 0, name: 'sda' });
    assert.deepEqual(await resolveBlockDevice('259:2', '/', { sysRoot: sys }), { major: 259, minor: 0, name: 'nvme0n1' });
  });

  it('a whole disk stays itself', async () => {
    assert.deepEqual(await resolveBlockDevice('8:0', '/', { sysRoot: sys }), { major: 8, minor: 0, name: 'sda' });
  });

  it('any path resolves to the disk its filesystem is on; no device means the working directory', async () => {
    const file = path.join(work, 'data.bin');
    writeFileSync(file, 'x');
    assert.deepEqual(await resolveBlockDevice(file, '/', { sysRoot: sys }), { major: 250, minor: 0, name: 'vdz' });
    assert.deepEqual(await resolveBlockDevice(undefined, work, { sysRoot: sys }), { major: 250, minor: 0, name: 'vdz' });
  });

  it('refuses virtual devices, naming what they are', async () => {
    await refused(resolveBlockDevice('7:0', '/', { sysRoot: sys }), /loop0 \(7:0\), a loop device: IO limits need a physical disk/);
    await refused(resolveBlockDevice('253:0', '/', { sysRoot: sys }), /zram0 \(253:0\), a compressed RAM disk/);
    await refused(resolveBlockDevice('252:1', '/', { sysRoot: sys }), /dm-1 \(252:1\), a device-mapper device/);
  });

  it('a refusal lists the physical disks of the host', async () => {
    await refused(
      resolveBlockDevice('/dev/sdq', '/', { sysRoot: sys, field: 'limits.io[0].device' }),
      /^limits\.io\[0\]\.device: \/dev\/sdq does not exist; this host's disks: \/dev\/nvme0n1 \(259:0\), \/dev\/sda \(8:0\)$/,
      'limits.io[0].device',
    );
    await refused(resolveBlockDevice('7:0', '/', { sysRoot: sys }), /a loop device: IO limits need a physical disk; this host's disks: \/dev\/nvme0n1/);
  });

  it('refuses what is not a block device at all', async () => {
    await refused(resolveBlockDevice('9:9', '/', { sysRoot: sys }), /9:9 is not a block device/);
    await refused(resolveBlockDevice('/dev/null', '/', { sysRoot: sys }), /\/dev\/null is a character device/);
    await refused(resolveBlockDevice('/nonexistent/disk', '/', { sysRoot: sys, field: 'limits.io[0].device' }), /does not exist/, 'limits.io[0].device');
    await refused(resolveBlockDevice('dev/sda', '/', { sysRoot: sys }), /absolute path or MAJ:MIN/);
    // A filesystem with no block device beneath it (the fake sysfs knows only our temp dir's device).
    await refused(resolveBlockDevice('/proc/self', '/', { sysRoot: sys }), /\/proc\/self is on device 0:\d+, which is not a block device \(a virtual filesystem/);
  });
});

describe('resolveIoLimits', () => {
  it('resolves each device, defaulting to the working directory\'s disk', async () => {
    const io = await resolveIoLimits([{ writeBps: 5_000_000 }, { device: '8:1', readIops: 100 }], work, { sysRoot: sys });
    assert.deepEqual(io, [{ device: '250:0', writeBps: 5_000_000 }, { device: '8:0', readIops: 100 }]);
  });

  it('two spellings of one disk with different rates are one entry', async () => {
    const io = await resolveIoLimits([{ device: '8:0', readBps: 8192 }, { device: '8:1', writeBps: 16384 }], work, { sysRoot: sys });
    assert.deepEqual(io, [{ device: '8:0', readBps: 8192, writeBps: 16384 }]);
  });

  it('refuses the same rate twice for one disk, naming both spellings', async () => {
    await refused(resolveIoLimits([{ device: '8:0', readBps: 8192 }, { device: '8:1', readBps: 8192 }], work, { sysRoot: sys }),
      /^limits\.io\[1\]\.readBps: 8:1 is disk sda \(8:0\), which has this rate already \(from 8:0\); give each rate once per disk$/, 'limits.io[1].readBps');
  });
});
