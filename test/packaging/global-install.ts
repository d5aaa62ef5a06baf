// The install path the README gives: `npm pack` in a checkout, then `npm install -g` of the tarball,
// run as written (the README's own lines) into a temporary global prefix; then the installed
// `job-worker` and `job-cli`, from outside any checkout, run a job and serve the dashboard (its
// page and assets come from the package: nothing is built or fetched there). Once more with cmake off PATH,
// where the install must build the addon with node-gyp instead. Takes two minutes or so (the addon
// is compiled twice), so `npm run test:packaging` runs it (CI's packaging step), not `npm test`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { CliProcess, cliEnvironment, REPO_ROOT, show } from '../helpers/cli';
import { leftoverCgroups } from '../helpers/cli-daemon';
import { requireRoot } from '../helpers/root';
import { SpawnedDaemon } from '../helpers/spawned-daemon';

const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };

/** The README's fenced code blocks. */
function readmeBlocks(): string[] {
  return readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8').split(/^```.*$/m).filter((_, i) => i % 2 === 1);
}

/** The README's fenced block that holds the `npm pack` line, as one shell script. */
function readmeInstallBlock(): string {
  const block = readmeBlocks().find((text) => /^npm pack\b/m.test(text));
  assert.ok(block, 'the README has a code block with `npm pack`');
  assert.match(block, /^npm install -g \.\/jobworker-\*\.tgz\b/m, 'and `npm install -g ./jobworker-*.tgz` in it');
  return block;
}

/** The files git knows (tracked or new, not ignored) copied to `dest`: a checkout with no dist/ or build/. */
function copyCheckout(dest: string): void {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(listed.status, 0, listed.stderr);
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    const from = path.join(REPO_ROOT, file);
    if (!existsSync(from)) continue; // deleted in the work tree
    mkdirSync(path.dirname(path.join(dest, file)), { recursive: true });
    copyFileSync(from, path.join(dest, file));
  }
}

/** A PATH with every command of ours except `cmake` (links in one directory), as on a host without it. */
function pathWithout(command: string, dir: string): string {
  mkdirSync(dir);
  for (const bin of (process.env.PATH ?? '').split(':')) {
    let names: string[];
    try {
      names = readdirSync(bin);
    } catch {
      continue;
    }
    for (const name of names) {
      const link = path.join(dir, name);
      if (name !== command && !existsSync(link)) symlinkSync(path.join(bin, name), link);
    }
  }
  return dir;
}

function sh(script: string, cwd: string, env: NodeJS.ProcessEnv): { status: number | null; output: string } {
  const result = spawnSync('/bin/sh', ['-e', '-c', script], { cwd, env, encoding: 'utf8', timeout: 600_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** npm with its global prefix in `prefix` and nothing of ours that changes what it does. */
function npmEnvironment(prefix: string, pathVariable = process.env.PATH): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('npm_') && !name.startsWith('JOBWORKER_')) env[name] = value;
  return { ...env, PATH: pathVariable, npm_config_prefix: prefix, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

let seq = 0;

/**
 * The installed `job-worker --dev` (HOME in `home`, a free port, its own cgroup root), then the
 * installed `job-cli run`, from a directory that is no checkout, with PATH = the prefix's bin first.
 */
async function runJobWith(prefix: string, home: string): Promise<void> {
  const env = cliEnvironment(home, { PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` });
  const cgroupRootName = `jobworker-test-${process.pid}-install-${seq++}`;
  const config = path.join(home, 'config.json');
  writeFileSync(config, JSON.stringify({ cgroupRootName }));
  const child = spawn('job-worker', ['--dev', '--config', config, '--listen', '127.0.0.1:0', '--metrics-listen', 'off', '--log-format', 'json'], {
    cwd: home,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const daemon = new SpawnedDaemon(child);
  try {
    const port = await daemon.port();
    const run = await new CliProcess('job-cli', ['run', '--memory', '64M', '--', 'sh', '-c', 'echo hello from $0', 'the installed daemon'], {
      home,
      cwd: home,
      env: { PATH: env.PATH, JOBWORKER_ADDR: `localhost:${port}` },
    }).result;
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, 'hello from the installed daemon\n', show(run));
    await checkDashboard(home, env.PATH!, port);
  } finally {
    const exit = await daemon.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, daemon.stderrText);
  }
  assert.deepEqual(leftoverCgroups(cgroupRootName), []);
}

/** The installed `job-cli ui`: its page and assets are served, and its WebSocket shows the daemon up with the job run before. */
async function checkDashboard(home: string, pathVariable: string, port: number): Promise<void> {
  const ui = new CliProcess('job-cli', ['ui', '--no-open', '--json'], { home, cwd: home, env: { PATH: pathVariable, JOBWORKER_ADDR: `localhost:${port}` } });
  try {
    await ui.waitFor('\n');
    const { url } = JSON.parse(ui.stdout) as { url: string };
    // The token opens the page with the session written into it (docs/ui.md, "Security model").
    const page = await fetch(url, { redirect: 'manual' });
    assert.equal(page.status, 200);
    const origin = new URL(url).origin;
    // Nothing is fetched from elsewhere: the policy allows only this server, and nothing names another.
    assert.match(page.headers.get('content-security-policy') ?? '', /^default-src 'none'; script-src 'self'; style-src 'self'[^;]*; img-src 'self' data:; font-src 'self'; connect-src 'self' ws:\/\/127\.0\.0\.1:\d+;/);
    const texts = [await page.text()];
    const session = /<meta name="jobworker-session" content="([A-Za-z0-9_-]{43})">/.exec(texts[0]!)?.[1];
    assert.ok(session !== undefined, texts[0]);
    for (const asset of ['/assets/app.js', '/assets/app.css']) {
      const answer = await fetch(`${origin}${asset}`);
      assert.equal(answer.status, 200, asset);
      const text = await answer.text();
      assert.ok(text.length > 1000, asset);
      texts.push(text);
    }
    const elsewhere = texts.flatMap((text) => text.match(/(?:https?:|wss?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi) ?? []).filter((address) => !/^https?:\/\/www\.w3\.org\//.test(address));
    assert.deepEqual(elsewhere, [], 'the page and its assets load nothing from another server (XML namespace names aside)');
    const socket = new WebSocket(`${origin.replace('http', 'ws')}/api/ws`, ['jobworker', `jobworker-session.${session}`], { headers: { origin } });
    await new Promise<void>((resolve, reject) => {
      // The two arrive in either order: the job list can come while the host still shows
      // "connecting" (its watch answered before its first health check), the job as a 'jobs' list
      // or as a 'job' change.
      let up = false;
      let seen = false;
      socket.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString()) as { type: string; hosts?: { status: string }[]; jobs?: { command: string }[]; job?: { command: string } };
        if (message.type === 'hosts') up = message.hosts?.[0]?.status === 'up';
        if (message.type === 'jobs' && message.jobs?.some((job) => job.command === 'sh')) seen = true;
        if (message.type === 'job' && message.job?.command === 'sh') seen = true;
        if (up && seen) resolve();
      });
      socket.on('error', reject);
      socket.on('close', () => reject(new Error(`the dashboard closed its WebSocket before it showed the daemon up (${up}) with the job (${seen})`)));
    });
    socket.close();
  } finally {
    ui.child.kill('SIGTERM');
    const result = await ui.result;
    assert.equal(result.code, 0, show(result));
  }
}

function assertOnPath(prefix: string): void {
  const env = { ...process.env, PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` };
  const version = spawnSync('job-worker', ['--version'], { env, encoding: 'utf8' });
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout.trim(), pkg.version);
  const help = spawnSync('job-cli', ['--help'], { env, encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /job-cli run\b/);
}

describe('npm pack, then npm install -g of the tarball', requireRoot, () => {
  let dir: string;
  let tarball: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-install-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the README never has the blocking `npm start` in the block of another command', () => {
    const startBlocks = readmeBlocks().filter((text) => /\bnpm start\b/.test(text));
    assert.ok(startBlocks.length > 0, 'the README shows `npm start`');
    for (const block of startBlocks) assert.equal(block.trim().split('\n').length, 1, `a block of its own:\n${block}`);
  });

  it('the README\'s lines, in a fresh checkout, pack and install both commands into the global prefix', { timeout: 600_000 }, () => {
    const checkout = path.join(dir, 'checkout');
    copyCheckout(checkout);
    assert.ok(!existsSync(path.join(checkout, 'dist')) && !existsSync(path.join(checkout, 'build')));
    // The checkout's own dev dependencies (`npm ci` there would fetch the same), for `prepare` (tsc).
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(checkout, 'node_modules'));
    const prefix = path.join(dir, 'prefix');
    const result = sh(readmeInstallBlock(), checkout, npmEnvironment(prefix));
    assert.equal(result.status, 0, result.output);
    tarball = path.join(checkout, `jobworker-${pkg.version}.tgz`);
    assert.ok(existsSync(tarball), result.output);

    for (const command of ['job-worker', 'job-cli']) assert.ok(statSync(path.join(prefix, 'bin', command)).mode & 0o111, `${command} is an executable in ${prefix}/bin`);
    assertOnPath(prefix);
    const installed = path.join(prefix, 'lib', 'node_modules', 'jobworker');
    assert.ok(existsSync(path.join(installed, 'build', 'Release', 'jobworker.node')), 'the install script built the addon');
    assert.ok(existsSync(path.join(installed, 'build', 'CMakeCache.txt')), 'with cmake-js, cmake being installed');
    assert.ok(!existsSync(path.join(installed, 'node_modules', 'typescript')), 'no dev dependency was installed');
  });

  it('the tarball holds the compiled JavaScript, the built dashboard, the addon\'s sources and the unit, and no tests, bench, build output or node_modules', () => {
    const listed = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    const files = listed.stdout.split('\n').filter(Boolean).map((name) => name.replace(/^package\//, ''));
    for (const needed of ['package.json', 'README.md', 'bin/job-worker.js', 'bin/job-cli.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/job-worker/main.js', 'dist/src/cli/job-cli/bundle.js', 'dist/src/cli/job-cli/bundle.cache', 'dist/src/cli/job-cli/bundle.stamp.json', 'dist/web/index.html', 'dist/web/assets/app.js', 'dist/web/assets/app.css', 'native/build.js', 'native/addon.cc', 'CMakeLists.txt', 'binding.gyp', 'proto/jobworker/v1/jobworker.proto', 'contrib/jobworker.service']) {
      assert.ok(files.includes(needed), `the tarball has ${needed}`);
    }
    const unexpected = files.filter((file) => !/^(package\.json|README\.md|CMakeLists\.txt|binding\.gyp|bin\/[^/]+\.js|dist\/src\/.+\.(js|d\.ts)|dist\/src\/cli\/job-cli\/bundle\.(cache|stamp\.json)|dist\/web\/(index\.html|assets\/app\.(js|css)(\.LEGAL\.txt)?)|src\/gen\/descriptors\.binpb|native\/[^/]+\.(c|cc|h|js)|proto\/jobworker\/.+\.proto|contrib\/[^/]+)$/.test(file));
    assert.deepEqual(unexpected, [], 'nothing a host does not need (tests, bench, build/, node_modules, source maps, TypeScript sources)');
    assert.deepEqual(files.filter((file) => file.includes('build-bundle')), [], 'the build\'s own bundling script stays behind');
    const packed = JSON.parse(spawnSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }).stdout) as { dependencies: Record<string, string> };
    assert.ok('cmake-js' in packed.dependencies && 'node-addon-api' in packed.dependencies, 'what the install script builds with is a dependency');
  });

  it('the installed binaries run a job, from outside any checkout', { timeout: 120_000 }, async () => {
    const home = mkdtempSync(path.join(dir, 'home-'));
    await runJobWith(path.join(dir, 'prefix'), home);
  });

  it('the installed job-cli starts from its bundle with the code cache, unless npm installed other versions of what it bundles', () => {
    const installed = path.join(dir, 'prefix', 'lib', 'node_modules', 'jobworker');
    const built = path.join(installed, 'dist', 'src', 'cli', 'job-cli');
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const loaded = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(path.join(built, 'launch.js'))}).loadCli().source)`], { env, encoding: 'utf8' });
    // npm installs the newest versions the ranges allow, which may have moved on since the build:
    // then job-cli must run what is installed (its modules), not what it bundled.
    const stamp = JSON.parse(readFileSync(path.join(built, 'bundle.stamp.json'), 'utf8')) as { packages: Record<string, string> };
    const versionAt = (file: string): string | null => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : null);
    const moved = Object.entries(stamp.packages).filter(([packageDir, version]) => {
      const name = packageDir.slice(packageDir.lastIndexOf('node_modules/') + 'node_modules/'.length);
      const found = versionAt(path.join(installed, packageDir, 'package.json')) ?? versionAt(path.join(installed, 'node_modules', name, 'package.json'));
      return found !== version;
    });
    assert.equal(loaded.stdout, moved.length === 0 ? 'bundle+cache' : 'modules', `${loaded.stderr}; packages installed in other versions: ${moved.map(([d]) => d).join(', ') || 'none'}`);
  });

  it('without cmake on PATH, the install builds the addon with node-gyp, and that build runs jobs too', { timeout: 600_000 }, async () => {
    const prefix = path.join(dir, 'prefix-gyp');
    const noCmake = pathWithout('cmake', path.join(dir, 'path-without-cmake'));
    assert.notEqual(spawnSync('sh', ['-c', 'command -v cmake'], { env: { PATH: noCmake } }).status, 0, 'cmake is off PATH');
    const result = sh(`npm install -g ${tarball}`, dir, npmEnvironment(prefix, noCmake));
    assert.equal(result.status, 0, result.output);
    const installed = path.join(prefix, 'lib', 'node_modules', 'jobworker');
    assert.ok(existsSync(path.join(installed, 'build', 'config.gypi')), `node-gyp built it:\n${result.output}`);
    assert.ok(!existsSync(path.join(installed, 'build', 'CMakeCache.txt')), 'not cmake-js');
    assertOnPath(prefix);
    await runJobWith(prefix, mkdtempSync(path.join(dir, 'home-')));
  });
});
