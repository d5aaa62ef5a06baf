// How bin/job-cli.js loads the CLI (issue 17: start-up). `npm run build` bundles the CLI and what it
// uses into one file beside this one (./build-bundle.ts) and keeps V8's code cache for it: the
// compiled code of every function a connecting command ran when the build tried one. Loading that
// file with its cache skips most of resolving, reading and compiling ~100 modules: `job-cli query`
// took 0.23 s from the modules, 0.22 s from the bundle alone and 0.17–0.18 s with the cache, against
// 0.08 s for `node -e 0` (docs/benchmarks.md).
//
// The stamp the build writes beside them decides what runs:
//  - no stamp, or, in a development tree (a checkout, with its tsconfig.json), one of the CLI's own
//    compiled modules newer than the bundle (a `tsc` after the build: the bundle is stale): the
//    modules, as before there was a bundle. An installed package is taken as built: npm writes its
//    files with times of its own choosing, in no particular order;
//  - otherwise the bundle, with its code cache if the stamp matches the bundle as it is (size and
//    CRC-32: not times, which npm sets to one fixed date when it installs) and this Node. V8 also
//    refuses a cache made by another V8 or under other flags (NODE_OPTIONS): then the bundle
//    compiles as usual, a little slower.
// The cache is code: it is written by the build only, beside the bundle, and trusted as the bundle is.
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
  node: string;
  bundleBytes: number;
  bundleCrc32: number;
  /** Our own compiled modules (dist/src) in the bundle, relative to its directory. */
  sources: string[];
}

export function stampFor(bundle: Buffer, sources: string[]): BundleStamp {
  return { node: process.version, bundleBytes: bundle.length, bundleCrc32: crc32(bundle), sources };
}

function readStamp(dir: string): BundleStamp | null {
  try {
    const stamp = JSON.parse(readFileSync(path.join(dir, STAMP_FILE), 'utf8')) as BundleStamp;
    return Array.isArray(stamp.sources) ? stamp : null;
  } catch {
    return null;
  }
}

/**
 * True in a development tree (dist/src/cli/job-cli below a checkout) if a module the bundle was made
 * from was written after it (one that is gone cannot have been).
 */
function sourcesNewerThanBundle(dir: string, stamp: BundleStamp): boolean {
  if (!existsSync(path.join(dir, '..', '..', '..', '..', 'tsconfig.json'))) return false;
  let bundled: number;
  try {
    bundled = statSync(path.join(dir, BUNDLE_FILE)).mtimeMs;
  } catch {
    return true; // no bundle
  }
  return stamp.sources.some((source) => {
    try {
      return statSync(path.join(dir, source)).mtimeMs > bundled;
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

/** The CLI: from the bundle in `dir` when the build left a current one (see above), else from its modules. */
export function loadCli(dir: string = __dirname): LoadedCli {
  const stamp = readStamp(dir);
  if (stamp === null || sourcesNewerThanBundle(dir, stamp)) {
    return { main: (require('./main') as typeof import('./main')).main, source: 'modules' };
  }
  const bundle = readFileSync(path.join(dir, BUNDLE_FILE));
  let cachedData: Buffer | undefined;
  const now = stampFor(bundle, stamp.sources);
  if (now.bundleBytes === stamp.bundleBytes && now.bundleCrc32 === stamp.bundleCrc32 && now.node === stamp.node) {
    try {
      cachedData = readFileSync(path.join(dir, CODE_CACHE_FILE));
    } catch {
      // no cache: the bundle alone
    }
  }
  const { main, script } = runBundle(dir, bundle, cachedData);
  return { main, source: cachedData !== undefined && !script.cachedDataRejected ? 'bundle+cache' : 'bundle' };
}
