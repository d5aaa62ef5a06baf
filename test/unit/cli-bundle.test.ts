// job-cli runs from the build's bundle with V8's code cache (src/cli/job-cli/launch.ts, issue 17),
// never with a cache made for another bundle or Node, and never from a bundle older than the modules
// it was made from. Each load runs in a process of its own, as bin/job-cli.js would: the test's own
// process keeps its modules to itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { BUNDLE_FILE, CODE_CACHE_FILE, STAMP_FILE, stampFor, type BundleStamp } from '../../src/cli/job-cli/launch';
import { CLI_BIN, cliEnvironment, REPO_ROOT } from '../helpers/cli';

const BUILT = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'job-cli');
const LAUNCH = path.join(BUILT, 'launch.js');
let dir: string;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-bundle-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Where a fresh process (without NODE_OPTIONS, as a user's shell) loads the CLI from `from`. */
function sourceOf(from: string): string {
  const env = cliEnvironment(dir);
  delete env.NODE_OPTIONS;
  const result = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(LAUNCH)}).loadCli(${JSON.stringify(from)}).source)`], {
    env,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

/**
 * A copy of the built bundle and its cache in a package root of its own (dir/name), stamped as the
 * build does with `sources` and `packages`; a development tree (a tsconfig.json at its root) if
 * `checkout`.
 */
function copyOfBuild(name: string, options: { sources?: string[]; packages?: Record<string, string>; checkout?: boolean } = {}): string {
  const copy = path.join(dir, name, 'dist', 'src', 'cli', 'job-cli');
  mkdirSync(copy, { recursive: true });
  if (options.checkout === true) writeFileSync(path.join(dir, name, 'tsconfig.json'), '{}\n');
  for (const file of [BUNDLE_FILE, CODE_CACHE_FILE]) copyFileSync(path.join(BUILT, file), path.join(copy, file));
  writeFileSync(path.join(copy, STAMP_FILE), JSON.stringify(stampFor(readFileSync(path.join(copy, BUNDLE_FILE)), options.sources ?? [], options.packages ?? {})));
  return copy;
}

function writePackage(packageDir: string, version: string): void {
  mkdirSync(packageDir, { recursive: true });
  writeFileSync(path.join(packageDir, 'package.json'), JSON.stringify({ name: path.basename(packageDir), version }));
}

function stampIn(copy: string): BundleStamp {
  return JSON.parse(readFileSync(path.join(copy, STAMP_FILE), 'utf8')) as BundleStamp;
}

describe('job-cli bundle and code cache', () => {
  it('the build leaves a bundle whose code cache this Node takes', () => {
    assert.equal(sourceOf(BUILT), 'bundle+cache');
  });

  it('bin/job-cli.js runs from the bundle: a command answers without the CLI modules loaded', () => {
    const out = path.join(dir, 'modules.txt');
    writeFileSync(path.join(dir, 'record.js'), `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, Object.keys(require.cache).join('\\n')));\n`);
    const result = spawnSync(process.execPath, ['--require', path.join(dir, 'record.js'), CLI_BIN, 'query', '--help'], { env: cliEnvironment(dir), encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /job-cli query/);
    const loaded = readFileSync(out, 'utf8').split('\n');
    assert.ok(loaded.includes(LAUNCH), 'the launcher ran');
    assert.deepEqual(loaded.filter((file) => file.includes(`${path.sep}dist${path.sep}src${path.sep}`) && file !== LAUNCH), []);
  });

  it('a copy stamped for itself takes the cache: the stamp decides (the checks below have teeth)', () => {
    assert.equal(sourceOf(copyOfBuild('same')), 'bundle+cache');
  });

  it('a copy whose every file has one old time, as npm installs them, still takes the cache', () => {
    const copy = copyOfBuild('npm-times');
    const npmDate = new Date('1985-10-26T08:15:00Z');
    for (const file of [BUNDLE_FILE, CODE_CACHE_FILE, STAMP_FILE]) utimesSync(path.join(copy, file), npmDate, npmDate);
    assert.equal(sourceOf(copy), 'bundle+cache');
  });

  it('a bundle changed after the build runs without the cache, even at the same length (all V8 compares)', () => {
    const copy = copyOfBuild('changed');
    const bundlePath = path.join(copy, BUNDLE_FILE);
    const text = readFileSync(bundlePath, 'utf8');
    const before = 'jobworker command-line client';
    assert.ok(text.includes(before), 'the bundle has the text this test edits');
    writeFileSync(bundlePath, text.replace(before, before.toUpperCase()));
    assert.equal(sourceOf(copy), 'bundle');
    appendFileSync(bundlePath, '\n// longer\n');
    assert.equal(sourceOf(copy), 'bundle');
  });

  it('a cache stamped for another V8 is not used', () => {
    const copy = copyOfBuild('other-v8');
    writeFileSync(path.join(copy, STAMP_FILE), JSON.stringify({ ...stampIn(copy), v8: '0.0.0' }));
    assert.equal(sourceOf(copy), 'bundle');
  });

  it('a bundled package installed in another version, or not at all, means the modules run', () => {
    const copy = copyOfBuild('packages', { packages: { 'node_modules/fake': '1.0.0' } });
    const root = path.join(dir, 'packages');
    writePackage(path.join(root, 'node_modules', 'fake'), '1.0.0');
    assert.equal(sourceOf(copy), 'bundle+cache', 'the version bundled');
    writePackage(path.join(root, 'node_modules', 'fake'), '1.0.1');
    assert.equal(sourceOf(copy), 'modules', 'updated after the build');
    rmSync(path.join(root, 'node_modules'), { recursive: true });
    assert.equal(sourceOf(copy), 'modules', 'not installed');
    writePackage(path.join(dir, 'node_modules', 'fake'), '1.0.0');
    assert.equal(sourceOf(copy), 'bundle+cache', 'hoisted above the package, where Node finds it');
    rmSync(path.join(dir, 'node_modules'), { recursive: true });
  });

  it('a package nested in another at build time is found where an install hoisted it', () => {
    const copy = copyOfBuild('nested', { packages: { 'node_modules/outer/node_modules/inner': '2.0.0' } });
    writePackage(path.join(dir, 'nested', 'node_modules', 'inner'), '2.0.0');
    assert.equal(sourceOf(copy), 'bundle+cache');
  });

  it('the build lists the CLI modules it bundled; in a checkout, one compiled after the bundle means the modules run', () => {
    const built = JSON.parse(readFileSync(path.join(BUILT, STAMP_FILE), 'utf8')) as BundleStamp;
    assert.ok(built.sources.includes('main.js') && built.sources.includes(path.join('..', '..', 'client', 'client.js')), built.sources.join(' '));
    assert.ok(!built.sources.some((source) => source.includes('node_modules')));
    const grpcVersion = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', '@grpc', 'grpc-js', 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(built.packages['node_modules/@grpc/grpc-js'], grpcVersion, 'packages are listed with their versions');
    for (const checkout of [true, false]) {
      const copy = copyOfBuild(`stale-${checkout}`, { sources: ['module.js', 'gone.js'], checkout });
      writeFileSync(path.join(copy, 'module.js'), '');
      const bundled = statSync(path.join(copy, BUNDLE_FILE)).mtimeMs / 1000;
      utimesSync(path.join(copy, 'module.js'), bundled - 10, bundled - 10);
      assert.equal(sourceOf(copy), 'bundle+cache', 'older sources (and a missing one) leave the bundle in use');
      utimesSync(path.join(copy, 'module.js'), bundled + 10, bundled + 10);
      // An installed package is taken as built, whatever times npm gave its files.
      assert.equal(sourceOf(copy), checkout ? 'modules' : 'bundle+cache', checkout ? 'in a checkout' : 'in an installed package');
    }
  });

  it('without a stamp, or without a bundle (stamp or not), the modules run', () => {
    const copy = copyOfBuild('no-stamp');
    rmSync(path.join(copy, STAMP_FILE));
    assert.equal(sourceOf(copy), 'modules');
    const noBundle = copyOfBuild('no-bundle');
    rmSync(path.join(noBundle, BUNDLE_FILE));
    assert.equal(sourceOf(noBundle), 'modules');
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    assert.equal(sourceOf(empty), 'modules');
  });
});
