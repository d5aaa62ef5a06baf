// Host side: everything the VM needs before it can boot. Debian packages (installed only when
// missing, `apt-get update` at most once), a Debian kernel and a static busybox (downloaded with
// `apt-get download`, unpacked with `dpkg-deb -x`, cached in test/vm/.cache/), the initramfs, and
// the two scratch disks.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';

/** Kernel modules the VM needs (their dependencies are added from each module's .modinfo). */
export const VM_MODULES: readonly string[] = [
  'virtio_pci', // the PCI transport for every device below
  'virtio_rng', // entropy at once, so node never waits for the crng under slow emulation
  '9pnet_virtio',
  '9p', // the host root and the control directory
  'overlay', // a writable root on top of the read-only 9p export
  'virtio_blk', // the scratch disks
  'crc32c_generic', // ext4 and jbd2 checksums (requested through the crypto API, not a module dependency)
  'ext4', // the scratch filesystem
  'loop', // loop0-7 and zram0 exist (unattached, uninitialised): tests that refuse IO limits on them can run
  'zram',
];

export class HarnessError extends Error {}

export function log(message: string): void {
  process.stdout.write(`[test:v2] ${message}\n`);
}

function run(command: string, args: readonly string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (result.error) throw new HarnessError(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const output = `${String(result.stdout ?? '')}${String(result.stderr ?? '')}`.trim().split('\n').slice(-15).join('\n');
    throw new HarnessError(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}:\n${output}`);
  }
  return String(result.stdout ?? '');
}

export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const candidate = path.join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// apt

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
let aptUpdated = false;

function aptUpdate(): void {
  if (aptUpdated) return;
  aptUpdated = true;
  log('apt-get update');
  run('apt-get', ['update', '-qq'], { env: APT_ENV });
}

function hasPackageLists(): boolean {
  try {
    return readdirSync('/var/lib/apt/lists').some((f) => f.includes('_Packages'));
  } catch {
    return false;
  }
}

/** Runs an apt operation; if it fails on stale or missing package lists, updates them once and retries. */
function withFreshLists<T>(operation: () => T): T {
  if (!hasPackageLists()) aptUpdate();
  try {
    return operation();
  } catch (error) {
    if (aptUpdated) throw error;
    aptUpdate();
    return operation();
  }
}

function requireApt(what: string): void {
  if (!which('apt-get') || !which('dpkg-deb')) {
    throw new HarnessError(`${what} is missing and this is not a Debian-like host (no apt-get/dpkg-deb): install it by hand`);
  }
  if (process.getuid?.() !== 0) throw new HarnessError(`${what} is missing: run as root so the harness can install it`);
}

/** Installs the Debian packages that provide the missing commands (qemu, mkfs.ext4). */
export function ensureHostTools(): void {
  const needed: string[] = [];
  if (!which('qemu-system-x86_64')) needed.push('qemu-system-x86');
  if (!which('mkfs.ext4')) needed.push('e2fsprogs');
  if (needed.length === 0) return;
  requireApt(needed.join(', '));
  log(`installing ${needed.join(' ')}`);
  withFreshLists(() =>
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...needed], { env: APT_ENV }),
  );
  for (const command of ['qemu-system-x86_64', 'mkfs.ext4']) {
    if (!which(command)) throw new HarnessError(`${command} still missing after apt-get install`);
  }
}

/** `apt-get download` into a fresh temporary directory; returns the .deb's path. */
function aptDownload(pkg: string, scratch: string): string {
  const dir = mkdtempSync(path.join(scratch, 'download-'));
  // APT::Sandbox::User=root: the _apt user cannot write into our cache directory.
  run('apt-get', ['download', '-qq', '-o', 'APT::Sandbox::User=root', pkg], { cwd: dir, env: APT_ENV });
  const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (!deb) throw new HarnessError(`apt-get download ${pkg} produced no .deb`);
  return path.join(dir, deb);
}

/** Downloads a package and unpacks it into `target` (atomically: concurrent runs never see half a tree). */
function downloadAndExtract(pkg: string, cacheDir: string, target: string): void {
  const scratch = mkdtempSync(path.join(cacheDir, '.tmp-'));
  try {
    const deb = aptDownload(pkg, scratch);
    const tree = path.join(scratch, 'tree');
    run('dpkg-deb', ['-x', deb, tree]);
    try {
      renameSync(tree, target);
    } catch (error) {
      if (!existsSync(target)) throw error; // else another run got there first
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// kernel and busybox

export interface Kernel {
  /** The Debian package, e.g. linux-image-6.1.0-50-amd64. */
  pkg: string;
  /** The release, e.g. 6.1.0-50-amd64. */
  release: string;
  vmlinuz: string;
  modulesDir: string;
  downloaded: boolean;
}

function kernelPackageFromApt(): string {
  const out = run('apt-cache', ['depends', 'linux-image-amd64']);
  const match = /Depends:\s*(linux-image-[^\s]+-amd64)\b/.exec(out);
  if (!match) throw new HarnessError(`cannot resolve the kernel ABI from "apt-cache depends linux-image-amd64":\n${out}`);
  return match[1]!;
}

function cachedKernelPackages(kernelCache: string): string[] {
  try {
    return readdirSync(kernelCache).filter((d) => d.startsWith('linux-image-')).sort();
  } catch {
    return [];
  }
}

/**
 * The Debian kernel `linux-image-amd64` points at (or JOBWORKER_V2_KERNEL_PKG), from the cache or
 * downloaded. Without apt lists and with a cached kernel, the cached one is used (offline reruns).
 */
export function ensureKernel(cacheDir: string): Kernel {
  const kernelCache = path.join(cacheDir, 'kernel');
  mkdirSync(kernelCache, { recursive: true });
  const resolve = (): string => process.env.JOBWORKER_V2_KERNEL_PKG || withFreshLists(kernelPackageFromApt);
  let pkg = process.env.JOBWORKER_V2_KERNEL_PKG;
  if (!pkg) {
    const cached = cachedKernelPackages(kernelCache);
    if (!hasPackageLists() && cached.length > 0) pkg = cached.at(-1)!;
    else {
      requireApt('the kernel package name');
      pkg = resolve();
    }
  }
  let downloaded = false;
  if (!existsSync(path.join(kernelCache, pkg))) {
    requireApt(pkg);
    log(`downloading ${pkg} (apt-get download, dpkg-deb -x)`);
    try {
      downloadAndExtract(pkg, kernelCache, path.join(kernelCache, pkg));
    } catch (error) {
      // Stale lists name an ABI the mirror no longer has: update, resolve again, retry once.
      if (aptUpdated) throw error;
      aptUpdate();
      pkg = resolve();
      if (!existsSync(path.join(kernelCache, pkg))) downloadAndExtract(pkg, kernelCache, path.join(kernelCache, pkg));
    }
    downloaded = true;
    // One kernel in the cache (~400 MB each): the one just fetched.
    for (const old of cachedKernelPackages(kernelCache)) if (old !== pkg) rmSync(path.join(kernelCache, old), { recursive: true, force: true });
  }
  const target = path.join(kernelCache, pkg);
  const boot = path.join(target, 'boot');
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new HarnessError(`${pkg} has no boot/vmlinuz-*`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  return {
    pkg,
    release,
    vmlinuz: path.join(boot, vmlinuz),
    modulesDir: path.join(target, 'lib', 'modules', release),
    downloaded,
  };
}

/** A statically linked busybox (Debian's busybox-static), unpacked into the cache, never installed. */
export function ensureBusybox(cacheDir: string): { path: string; downloaded: boolean } {
  const target = path.join(cacheDir, 'busybox-static');
  const binary = path.join(target, 'bin', 'busybox');
  if (existsSync(binary)) return { path: binary, downloaded: false };
  requireApt('busybox-static');
  log('downloading busybox-static (apt-get download, dpkg-deb -x)');
  withFreshLists(() => downloadAndExtract('busybox-static', cacheDir, target));
  if (!existsSync(binary)) throw new HarnessError('busybox-static has no bin/busybox');
  return { path: binary, downloaded: true };
}

// ---------------------------------------------------------------------------------------------
// modules

const normalize = (name: string): string => name.replace(/-/g, '_');

/** The key=value strings of a kernel module's .modinfo ELF section. */
export function readModinfo(file: string): Map<string, string[]> {
  const elf = readFileSync(file);
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new HarnessError(`${file}: not a little-endian ELF64 module (compressed modules are not supported)`);
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const base = shoff + i * shentsize;
    return {
      name: elf.readUInt32LE(base),
      offset: Number(elf.readBigUInt64LE(base + 0x18)),
      size: Number(elf.readBigUInt64LE(base + 0x20)),
    };
  };
  const names = section(shstrndx);
  const info = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameEnd = elf.indexOf(0, names.offset + s.name);
    if (elf.toString('latin1', names.offset + s.name, nameEnd) !== '.modinfo') continue;
    for (const entry of elf.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }
  return info;
}

function indexModules(dir: string, index: Map<string, string>): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) indexModules(full, index);
    else if (entry.name.endsWith('.ko')) index.set(normalize(entry.name.slice(0, -3)), full);
  }
}

/** The module files to load, dependencies first, skipping modules built into the kernel. */
export function resolveModules(modulesDir: string, wanted: readonly string[]): string[] {
  const index = new Map<string, string>();
  indexModules(path.join(modulesDir, 'kernel'), index);
  const builtin = new Set(
    readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => normalize(path.basename(line).replace(/\.ko$/, ''))),
  );
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (raw: string): void => {
    const name = normalize(raw);
    if (builtin.has(name) || order.includes(index.get(name) ?? '') || visiting.has(name)) return;
    const file = index.get(name);
    if (!file) throw new HarnessError(`kernel module ${name} not found under ${modulesDir}`);
    visiting.add(name);
    for (const dep of (readModinfo(file).get('depends') ?? []).join(',').split(',')) if (dep) visit(dep);
    visiting.delete(name);
    order.push(file);
  };
  for (const name of wanted) visit(name);
  return order;
}

// ---------------------------------------------------------------------------------------------
// initramfs and disks

/** Packs busybox, init.sh and the modules (numbered in load order) into a newc cpio archive. */
export function buildInitramfs(options: {
  busybox: string;
  initScript: string;
  modules: readonly string[];
  workDir: string;
  output: string;
}): void {
  const stage = path.join(options.workDir, 'initramfs');
  rmSync(stage, { recursive: true, force: true });
  for (const dir of ['bin', 'dev', 'proc', 'sys', 'modules', 'run']) mkdirSync(path.join(stage, dir), { recursive: true });
  copyFileSync(options.busybox, path.join(stage, 'bin', 'busybox'));
  chmodSync(path.join(stage, 'bin', 'busybox'), 0o755);
  copyFileSync(options.initScript, path.join(stage, 'init'));
  chmodSync(path.join(stage, 'init'), 0o755);
  options.modules.forEach((file, i) => {
    copyFileSync(file, path.join(stage, 'modules', `${String(i + 10).padStart(3, '0')}-${path.basename(file)}`));
  });
  const entries: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(stage, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const child = rel === '.' ? entry.name : `${rel}/${entry.name}`;
      entries.push(child);
      if (entry.isDirectory()) walk(child);
    }
  };
  walk('.');
  const out = openSync(options.output, 'w');
  try {
    const result = spawnSync(options.busybox, ['cpio', '-o', '-H', 'newc'], {
      cwd: stage,
      input: `${entries.join('\n')}\n`,
      stdio: ['pipe', out, 'pipe'],
    });
    if (result.status !== 0) throw new HarnessError(`busybox cpio failed: ${String(result.stderr)}`);
  } finally {
    closeSync(out);
  }
  rmSync(stage, { recursive: true, force: true });
}

export const DISK_BYTES = 256 << 20;
const PARTITION_START = 1 << 20;

/** An MS-DOS partition table with one Linux partition from 1 MiB to the end of the disk. */
function partitionTable(diskBytes: number): Buffer {
  const mbr = Buffer.alloc(512);
  mbr.writeUInt32LE(0x6a6f6277, 440); // disk signature
  const entry = 446;
  mbr.set([0x00, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff], entry); // not bootable, CHS unused, type 83 (Linux)
  mbr.writeUInt32LE(PARTITION_START / 512, entry + 8);
  mbr.writeUInt32LE((diskBytes - PARTITION_START) / 512, entry + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

/**
 * The raw scratch disk (sparse, zeroed, no partition table) and the scratch filesystem disk: ext4
 * on partition 1, so IO limits are resolved from a partition to its whole disk as on real servers.
 */
export function createDisks(runDir: string): { raw: string; fs: string } {
  const raw = path.join(runDir, 'raw.img');
  const fs = path.join(runDir, 'fs.img');
  for (const file of [raw, fs]) {
    writeFileSync(file, '');
    truncateSync(file, DISK_BYTES);
  }
  // No lazy init: ext4lazyinit writing inode tables in the background would disturb io.max measurements.
  run('mkfs.ext4', [
    '-q', '-F', '-L', 'jobworker-fs',
    '-E', `offset=${PARTITION_START},lazy_itable_init=0,lazy_journal_init=0`,
    fs, `${(DISK_BYTES - PARTITION_START) / 1024}k`,
  ]);
  const fd = openSync(fs, 'r+');
  try {
    writeSync(fd, partitionTable(DISK_BYTES), 0, 512, 0);
  } finally {
    closeSync(fd);
  }
  return { raw, fs };
}
