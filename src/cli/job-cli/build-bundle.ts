// `npm run build`'s last step (not shipped: package.json "files"): job-cli as one file and V8's code
// cache for it, beside ./launch.ts, which loads them (see there for why and what it gained).
//
//  1. esbuild bundles dist/src/cli/job-cli/main.js and every module it can reach into bundle.js
//     (with a source map beside it for checkouts; maps are not shipped). Modules stay lazy: one a
//     command does not require is in the file but never runs.
//  2. A fresh Node process (no NODE_OPTIONS: V8 refuses a cache made under other flags) loads the
//     bundle and runs a connecting command, `job-cli query`, with throwaway dev credentials against a
//     port where nothing listens: it reads the files, builds the TLS context, opens a gRPC channel and
//     fails to connect. At exit it writes the code cache, with every function compiled by then.
//  3. The stamp (./launch.ts) ties the cache to this bundle and lists what is in it: our modules, and
//     the packages with their versions.
//  4. A last process loads the CLI as bin/job-cli.js would. If it cannot, the build fails (and
//     leaves no stamp: the CLI would run from its modules). If V8 refuses the cache, the cache is
//     removed and the build says so: job-cli then starts from the bundle alone, ~25 % slower.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { ensureDevPki } from '../../pki/dev';
import { BUNDLE_FILE, CODE_CACHE_FILE, packageVersion, runBundle, STAMP_FILE, stampFor } from './launch';

const HERE = __dirname; // dist/src/cli/job-cli
const REPO_ROOT = path.join(HERE, '..', '..', '..', '..');
const WARM_UP_FLAG = '--warm-up';
/** A well-formed job id; the daemon is never reached. */
const ANY_JOB_ID = '00000000-0000-4000-8000-000000000000';
/** node_modules/name or node_modules/@scope/name, nested ones included, at the start of an input path. */
const PACKAGE_DIR = /^(.*node_modules\/(?:@[^/]+\/[^/]+|[^@/][^/]*))\//;

/** The environment of the build's helper processes: ours without what would change V8 or the CLI. */
function cleanEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name !== 'NODE_OPTIONS' && !name.startsWith('JOBWORKER_') && !name.startsWith('XDG_')) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Bundles the CLI; returns our own modules in it (relative to HERE) and its packages with their versions. */
function bundle(): { sources: string[]; packages: Record<string, string> } {
  // Required here: esbuild is a devDependency, and the warm-up process does not need it.
  const esbuild = require('esbuild') as typeof import('esbuild');
  const result = esbuild.buildSync({
    absWorkingDir: REPO_ROOT,
    entryPoints: [path.join(HERE, 'main.js')],
    outfile: path.join(HERE, BUNDLE_FILE),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['*.node'],
    sourcemap: 'linked',
    logLevel: 'warning',
    metafile: true,
  });
  const inputs = Object.keys(result.metafile!.inputs);
  // Only dist/src: npm gives node_modules one fixed old time and rewrites package.json on install.
  const sources = inputs.filter((input) => input.startsWith('dist/src/')).map((input) => path.relative(HERE, path.resolve(REPO_ROOT, input)));
  const packages: Record<string, string> = {};
  for (const input of inputs) {
    const dir = PACKAGE_DIR.exec(input)?.[1];
    if (dir === undefined || dir in packages) continue;
    const version = packageVersion(path.join(REPO_ROOT, dir, 'package.json'));
    if (version === null) throw new Error(`build-bundle: no version in ${dir}/package.json`);
    packages[dir] = version;
  }
  return { sources, packages };
}

async function makeCodeCache(contents: { sources: string[]; packages: Record<string, string> }): Promise<void> {
  rmSync(path.join(HERE, CODE_CACHE_FILE), { force: true });
  rmSync(path.join(HERE, STAMP_FILE), { force: true });
  const home = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-build-'));
  try {
    const pki = await ensureDevPki(path.join(home, 'config'));
    const warmUp = spawnSync(process.execPath, [__filename, WARM_UP_FLAG], {
      env: cleanEnvironment({
        HOME: home,
        JOBWORKER_CA: pki.client.caPath,
        JOBWORKER_CERT: pki.client.certificatePath,
        JOBWORKER_KEY: pki.client.privateKeyPath,
      }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    // The command fails to connect (exit 1, saying so): anything else means it ran less than it should.
    const warmedUp = warmUp.status === 1 && /cannot connect/.test(warmUp.stderr);
    writeFileSync(path.join(HERE, STAMP_FILE), `${JSON.stringify(stampFor(readFileSync(path.join(HERE, BUNDLE_FILE)), contents.sources, contents.packages))}\n`);
    const check = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(path.join(HERE, 'launch.js'))}).loadCli().source)`], {
      env: cleanEnvironment({ HOME: home }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (check.status !== 0 || (check.stdout !== 'bundle+cache' && check.stdout !== 'bundle')) {
      rmSync(path.join(HERE, STAMP_FILE), { force: true });
      throw new Error(`the bundled job-cli does not load (exit ${check.status}, answered ${JSON.stringify(check.stdout)}): ${check.stderr.trim().slice(0, 2000)}`);
    }
    if (check.stdout !== 'bundle+cache' || !warmedUp) {
      if (check.stdout !== 'bundle+cache') rmSync(path.join(HERE, CODE_CACHE_FILE), { force: true });
      process.stderr.write(
        `build-bundle: warning: job-cli's code cache ${check.stdout === 'bundle+cache' ? 'was made from a warm-up that did not run as expected' : 'was not taken; job-cli starts from the bundle without it'} ` +
          `(warm-up exit ${warmUp.status}: ${warmUp.stderr.trim().slice(0, 400)})\n`,
      );
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** In the warm-up process: run a connecting command from the bundle; write the cache at exit. */
function warmUp(): void {
  const { main, script } = runBundle(HERE, readFileSync(path.join(HERE, BUNDLE_FILE)));
  // main() ends the process itself (process.exit), so the cache is taken in the exit handler.
  process.on('exit', () => writeFileSync(path.join(HERE, CODE_CACHE_FILE), script.createCachedData()));
  void main(['query', '--addr', '127.0.0.1:1', '--timeout', '2s', ANY_JOB_ID]);
}

if (process.argv[2] === WARM_UP_FLAG) {
  warmUp();
} else {
  makeCodeCache(bundle()).catch((error: unknown) => {
    process.stderr.write(`build-bundle: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
