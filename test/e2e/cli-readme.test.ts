// The README's quick start, exactly as written: a dev daemon as `npm start` runs it, with HOME in a
// fresh temporary directory (no certificates, no config), then the README's `npx job-cli run …`
// line, verbatim, through a shell in the repository.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { REPO_ROOT, runShell, show } from '../helpers/cli';
import { leftoverCgroups, startDevDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { requireRoot } from '../helpers/root';

/** The lines of the README's fenced code blocks. */
function codeLines(markdown: string): string[] {
  const lines: string[] = [];
  let inside = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inside = !inside;
    else if (inside) lines.push(line);
  }
  return lines;
}

describe('README quick start', requireRoot, () => {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  let home: string;
  let daemon: RunningTestDaemon | undefined;

  before(() => {
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-readme-home-'));
  });
  after(async () => {
    await daemon?.stop();
    rmSync(home, { recursive: true, force: true });
    if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  it('`npm start` is `job-worker --dev`, as the README says', () => {
    assert.ok(codeLines(readme).some((line) => line.startsWith('npm ci && npm start ')), 'the README shows `npm ci && npm start`');
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
    assert.equal(pkg.scripts.start, 'node bin/job-worker.js --dev');
    assert.equal(pkg.bin['job-cli'], 'bin/job-cli.js');
  });

  it('the `npx job-cli run …` line works with no setup against a fresh dev daemon', async () => {
    const line = codeLines(readme).find((l) => l.startsWith('npx job-cli run '));
    assert.ok(line, 'the README has an `npx job-cli run …` line in a code block');

    // `npm start` runs `node bin/job-worker.js --dev`; the test adds only what keeps it from
    // colliding with other tests: no metrics listener, its own cgroup root, JSON logs to read, and
    // a free port instead of 50051 — the README has `npm start` and `npm test` side by side, so a
    // developer's own dev daemon may well hold 50051 while this runs. JOBWORKER_ADDR points the
    // line at it; the line itself runs exactly as written.
    daemon = await startDevDaemon('cli-readme', home);
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) assert.ok(existsSync(path.join(home, '.config', 'jobworker', file)), `dev PKI installed ${file}`);

    // The line as written; npm is only kept off the network (no update check, offline).
    const result = await runShell(line, {
      home,
      cwd: REPO_ROOT,
      env: { JOBWORKER_ADDR: `localhost:${daemon.port}`, npm_config_update_notifier: 'false', npm_config_offline: 'true' },
      timeoutMs: 120_000,
    });
    assert.equal(result.code, 0, show(result));
    assert.equal(result.stdout, 'hello\nbye\n', show(result));
  });
});
