// `npm run build`'s last step (not shipped: package.json "files"): job-cli as one file and V8's code
// cache for it, beside ./launch.ts, which loads them (see there for why and what it gained).
//
//  1. esbuild bundles dist/src/cli/job-cli/main.js and every module it can reach into bundle.js.
//     Modules stay lazy: one a command does not require is in the file but never runs.
//  2. A fresh Node process (no NODE_OPTIONS: V8 refuses a cache made under other flags) loads the
//     bundle and runs a connecting command, `job-cli query`, with throwaway dev credentials against a
//     port where nothing listens: it reads the files, builds the TLS context, opens a gRPC channel and
//     fails to connect. At exit it writes the code cache, with every function compiled by then.
//  3. The stamp (./launch.ts) ties the cache to this bundle and lists our modules in it.
//  4. A last process checks that the launcher takes the cache; if V8 refuses it, the cache is
//     removed and the build says so (job-cli works from the bundle alone, ~25 % slower to start).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { ensureDevPki } from '../../pki/dev';
import { BUNDLE_FILE, CODE_CACHE_FILE, runBundle, STAMP_FILE, stampFor } from './launch';

const HERE = __dirname; // dist/src/cli/job-cli
const REPO_ROOT = path.join(HERE, '..', '..', '..', '..');
const WARM_UP_FLAG = '--warm-up';
/** A well-formed job id; the daemon is never reached. */
const ANY_JOB_ID = '00000000-0000-4000-8000-000000000000';

/** The environment of the build's helper processes: ours without what would change V8 or the CLI. */
function cleanEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name !== 'NODE_OPTIONS' && !name.startsWith('JOBWORKER_') && !name.startsWith('XDG_')) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Bundles the CLI; returns our own modules in it, relative to HERE. */
function bundle(): string[] {
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
    logLevel: 'warning',
    metafile: true,
  });
  // Only dist/src: npm gives node_modules one fixed old time and rewrites package.json on install.
  return Object.keys(result.metafile!.inputs)
    .filter((input) => input.startsWith('dist/src/'))
    .map((input) => path.relative(HERE, path.resolve(REPO_ROOT, input)));
}

async function makeCodeCache(sources: string[]): Promise<void> {
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
    writeFileSync(path.join(HERE, STAMP_FILE), `${JSON.stringify(stampFor(readFileSync(path.join(HERE, BUNDLE_FILE)), sources))}\n`);
    const check = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(path.join(HERE, 'launch.js'))}).loadCli().source)`], {
      env: cleanEnvironment({ HOME: home }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (check.stdout !== 'bundle+cache') {
      rmSync(path.join(HERE, CODE_CACHE_FILE), { force: true });
      process.stderr.write(
        `build-bundle: job-cli's code cache was not taken (the launcher answered ${JSON.stringify(check.stdout)}; ` +
          `warm-up exit ${warmUp.status}: ${warmUp.stderr.trim().slice(0, 400)}); job-cli runs from the bundle without it\n`,
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
    process.stderr.write(`build-bundle: ${String(error)}\n`);
    process.exit(1);
  });
}
