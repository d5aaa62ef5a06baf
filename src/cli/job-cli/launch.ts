// How bin/job-cli.js loads the CLI (issue 17: start-up). `npm run build` bundles the CLI and what it
// uses into one file beside this one (./build-bundle.ts) and keeps V8's code cache for it: the
// compiled code of every function a connecting command ran when the build tried one. Loading that
// file with its cache skips most of resolving, reading and compiling ~100 modules: `job-cli query`
// took 0.23 s from the modules, 0.22 s from the bundle alone and 0.17–0.18 s with the cache, against
// 0.08 s for `node -e 0` (docs/benchmarks.md).
//
// The stamp the build writes beside them decides what runs. The modules, as before there was a
// bundle, when:
//  - there is no stamp, or no bundle;
//  - a package the bundle holds is not installed in the version bundled (an `npm update` or audit
//    fix after the build: job-cli must run what is installed, as job-worker does);
//  - in a development tree (a checkout, with its tsconfig.json), one of the CLI's own compiled
//    modules is newer than the bundle (a `tsc` after the build). An installed package is taken as
//    built: npm writes its files with times of its own choosing, in no particular order.
// Otherwise the bundle, with its code cache if the stamp matches the bundle as it is (size and CRC-32:
// V8 itself compares only the length) and this V8. V8 also refuses a cache made under other flags
// (NODE_OPTIONS): then the bundle compiles as usual, a little slower. The cache is code: it is
// written by the build only, beside the bundle, and trusted as the bundle is. To debug from the
// modules, delete the stamp.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Script } from 'node:vm';
import { crc32 } from 'node:zlib';

export const BUNDLE_FILE = 'bundle.js';
export const CODE_CACHE_FILE = 'bundle.cache';
export const STAMP_FILE = 'bundle.stamp.json';

/** Where the CLI came from: the bundle with its code cache, the bundle alone, or the modules. */
export type CliSource = 'bundle+cache' | 'bundle' | 'modules';

type Main = (args: string[]) => Promise<void>;

export interface LoadedCli {
  main: Main;
  source: CliSource;
}

/** What the build bundled and cached. */
export interface BundleStamp {
  /** The V8 that made the cache (Node releases that share it share caches). */
  v8: string;
  bundleBytes: number;
  bundleCrc32: number;
  /** Our own compiled modules (dist/src) in the bundle, relative to its directory. */
  sources: string[];
  /** The packages in the bundle: their directories relative to the package root (node_modules/…), and versions. */
  packages: Record<string, string>;
}

export function stampFor(bundle: Buffer, sources: string[], packages: Record<string, string>): BundleStamp {
  return { v8: process.versions.v8, bundleBytes: bundle.length, bundleCrc32: crc32(bundle), sources, packages };
}

function readStamp(dir: string): BundleStamp | null {
  try {
    const stamp = JSON.parse(readFileSync(path.join(dir, STAMP_FILE), 'utf8')) as BundleStamp;
    return Array.isArray(stamp.sources) && typeof stamp.packages === 'object' && stamp.packages !== null ? stamp : null;
  } catch {
    return null;
  }
}

/** The version in a package.json, or null if there is none to read. */
export function packageVersion(packageJson: string): string | null {
  try {
    const version = (JSON.parse(readFileSync(packageJson, 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' ? version : null;
  } catch {
    return null;
  }
}

/**
 * The installed version of a bundled package: where the build found it (below `root`, the package
 * root), else where Node would look from the root up (an installation that hoisted it: a package
 * nested in another at build time may sit at the top of ours, or above it).
 */
function installedVersion(root: string, packageDir: string): string | null {
  const there = packageVersion(path.join(root, packageDir, 'package.json'));
  if (there !== null) return there;
  const name = packageDir.slice(packageDir.lastIndexOf('node_modules/') + 'node_modules/'.length);
  for (let dir = root; ; dir = path.dirname(dir)) {
    const found = packageVersion(path.join(dir, 'node_modules', name, 'package.json'));
    if (found !== null) return found;
    if (path.dirname(dir) === dir) return null;
  }
}

/** True if a package in the bundle is installed in another version than the bundled one, or not found. */
function packagesChanged(root: string, stamp: BundleStamp): boolean {
  return Object.entries(stamp.packages).some(([packageDir, version]) => installedVersion(root, packageDir) !== version);
}

/**
 * True in a development tree (a tsconfig.json at the package root) if a module the bundle was made
 * from was written after it (one that is gone cannot have been), or the bundle is gone.
 */
function sourcesNewerThanBundle(root: string, dir: string, stamp: BundleStamp): boolean {
  if (!existsSync(path.join(root, 'tsconfig.json'))) return false;
  let bundleMtimeMs: number;
  try {
    bundleMtimeMs = statSync(path.join(dir, BUNDLE_FILE)).mtimeMs;
  } catch {
    return true;
  }
  return stamp.sources.some((source) => {
    try {
      return statSync(path.join(dir, source)).mtimeMs > bundleMtimeMs;
    } catch {
      return false;
    }
  });
}

/** Node's CommonJS wrapper, written out: the build and the launcher must compile the same text. */
function wrapped(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
}

/** Runs the bundle (the bytes of `dir`'s bundle file), with `cachedData` if given; returns its main() and script. */
export function runBundle(dir: string, bundle: Buffer, cachedData?: Buffer): { main: Main; script: Script } {
  const bundlePath = path.join(dir, BUNDLE_FILE);
  const script = new Script(wrapped(bundle.toString('utf8')), { filename: bundlePath, ...(cachedData === undefined ? {} : { cachedData }) });
  const module = { exports: {} as { main?: Main } };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(module.exports, module.exports, createRequire(bundlePath), module, bundlePath, dir);
  const main = module.exports.main;
  if (typeof main !== 'function') throw new Error(`${bundlePath} does not export main(): rebuild with npm run build`);
  return { main, script };
}

function fromModules(): LoadedCli {
  return { main: (require('./main') as typeof import('./main')).main, source: 'modules' };
}

/**
 * The CLI: from the bundle in `dir` (dist/src/cli/job-cli, four levels below the package root) when
 * the build left a current one (see above), else from its modules.
 */
export function loadCli(dir: string = __dirname): LoadedCli {
  const stamp = readStamp(dir);
  if (stamp === null) return fromModules();
  const root = path.join(dir, '..', '..', '..', '..');
  if (packagesChanged(root, stamp) || sourcesNewerThanBundle(root, dir, stamp)) return fromModules();
  let bundle: Buffer;
  try {
    bundle = readFileSync(path.join(dir, BUNDLE_FILE));
  } catch {
    return fromModules();
  }
  let cachedData: Buffer | undefined;
  if (bundle.length === stamp.bundleBytes && crc32(bundle) === stamp.bundleCrc32 && process.versions.v8 === stamp.v8) {
    try {
      cachedData = readFileSync(path.join(dir, CODE_CACHE_FILE));
    } catch {
      // no cache: the bundle alone
    }
  }
  const { main, script } = runBundle(dir, bundle, cachedData);
  return { main, source: cachedData !== undefined && !script.cachedDataRejected ? 'bundle+cache' : 'bundle' };
}
