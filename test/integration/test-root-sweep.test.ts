// The test suites' own cleanup: cgroup roots left by a test process that died mid-run (killed, so
// its `after` hooks never ran) are removed by the next run, whatever label the helper gave them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { readProcCgroup, unifiedPathOf } from '../../src/cgroup/proc-cgroup';
import { sweepDeadTestRoots } from '../helpers/cgroup-jobs';
import { requireRoot } from '../helpers/root';
import { unifiedMount } from '../helpers/test-cgroup';

describe('sweeping what dead test processes left', requireRoot, () => {
  it('removes the roots of a process that is gone, named with or without a label, and keeps a live one', async () => {
    const parent = path.join(unifiedMount(), unifiedPathOf(readProcCgroup()) ?? '/');
    // A shell makes roots named after its own pid (as the helpers do), then exits without cleaning up.
    const made = execFileSync('sh', ['-c', 'for name in "jobworker-test-$$" "jobworker-test-$$-lifecycle-0" "jobworker-rel-$$-tenancy-0"; do mkdir -p "$1/$name/jobs/identity.x" && echo "$1/$name"; done', 'sh', parent], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const live = path.join(parent, `jobworker-test-${process.pid}-sweep-live`);
    execFileSync('mkdir', ['-p', path.join(live, 'jobs')]);
    try {
      assert.equal(made.length, 3);
      for (const dir of made) assert.ok(existsSync(dir), dir);
      await sweepDeadTestRoots();
      assert.deepEqual(made.filter((dir) => existsSync(dir)), [], 'the dead process\'s roots are gone');
      assert.ok(existsSync(path.join(live, 'jobs')), 'a root of a live process is kept');
    } finally {
      execFileSync('rmdir', [path.join(live, 'jobs'), live]);
      for (const dir of made.filter((d) => existsSync(d))) execFileSync('sh', ['-c', 'rmdir "$1/jobs/identity.x" "$1/jobs" "$1"', 'sh', dir]);
    }
  });
});
