// Where a Worker's jobs get their scratch directories by default.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { defaultScratchRoot } from '../../src/worker';

describe('default scratch root', () => {
  it('beside a state directory outside the private tmp directories', () => {
    assert.equal(defaultScratchRoot('/var/lib/jobworker'), '/var/lib/jobworker-scratch');
    assert.equal(defaultScratchRoot('/srv/jw/state/'), '/srv/jw/state-scratch');
  });

  it('under /var/lib/jobworker-scratch for one in /tmp, /var/tmp or /dev/shm, one root per state directory', () => {
    const a = defaultScratchRoot('/tmp/a/state');
    const b = defaultScratchRoot('/tmp/b/state');
    assert.match(a, /^\/var\/lib\/jobworker-scratch\/state-[0-9a-f]{12}$/);
    assert.match(defaultScratchRoot('/dev/shm/x'), /^\/var\/lib\/jobworker-scratch\/x-[0-9a-f]{12}$/);
    // Shared, the second Worker's open() would sweep the first one's live jobs' directories.
    assert.notEqual(a, b);
    assert.equal(defaultScratchRoot('/tmp/a/state/'), a, 'the same directory, however written, the same root');
  });
});
