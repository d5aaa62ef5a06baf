// `job-cli ui` as a process, without a browser (test/browser has those): what it prints, that it
// serves even when no daemon answers (each shown as down), that Ctrl-C or SIGTERM end it with 0,
// and a clear error for an address in use.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { runCli, show, spawnCli } from '../helpers/cli';

let home: string;

describe('job-cli ui (the process)', () => {
  before(() => {
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-ui-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  it('prints the URL with its token on stdout, serves with no daemon reachable, and ends with 0 on SIGINT and SIGTERM', async () => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const ui = spawnCli(['ui', '--no-open', '--addr', 'localhost:1'], { home });
      await ui.waitFor('Ctrl-C stops it', 'stderr');
      await ui.waitFor(/token=.*\n/);
      const url = /^ {4}(http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43})$/m.exec(ui.stdout)?.[1];
      assert.ok(url !== undefined, ui.stdout);
      assert.match(ui.stderr, /serving default \(localhost:1\) on http:\/\/127\.0\.0\.1:\d+\//);
      const page = await fetch(url, { redirect: 'manual' });
      assert.equal(page.status, 200, 'the token opens the page');
      assert.match(await page.text(), /name="jobworker-session" content="[A-Za-z0-9_-]{43}"/, 'with the session written into it');
      ui.child.kill(signal);
      const result = await ui.result;
      assert.equal(result.code, 0, show(result));
    }
  });

  it('--json: one line with the URL and the daemons', async () => {
    const ui = spawnCli(['ui', '--no-open', '--json', '--addr', 'localhost:1'], { home });
    await ui.waitFor('\n');
    const line = JSON.parse(ui.stdout.split('\n')[0]!) as { url: string; hosts: unknown };
    assert.match(line.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    assert.deepEqual(line.hosts, [{ context: 'default', address: 'localhost:1' }]);
    ui.child.kill('SIGTERM');
    assert.equal((await ui.result).code, 0);
  });

  it('says which address is in use (exit 1)', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      const result = await runCli(['ui', '--no-open', '--listen', `127.0.0.1:${port}`, '--addr', 'localhost:1'], { home });
      assert.equal(result.code, 1, show(result));
      assert.match(result.stderr, new RegExp(`^job-cli: --listen 127\\.0\\.0\\.1:${port}: the address is in use\\nhint: `));
    } finally {
      taken.close();
    }
  });
});
