import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { JobworkerError } from '../../src/errors';
import { assertTransition, canTransition, finalStateOf, isFinal } from '../../src/worker/job-state';

describe('job state machine', () => {
  it('allows only the documented transitions', () => {
    assert.ok(canTransition('starting', 'running'));
    assert.ok(canTransition('starting', 'lost'));
    for (const to of ['exited', 'failed', 'stopped', 'lost'] as const) assert.ok(canTransition('running', to));
    assert.ok(!canTransition('running', 'starting'));
    for (const from of ['exited', 'failed', 'stopped', 'lost'] as const) {
      assert.ok(isFinal(from));
      assert.ok(!canTransition(from, 'running'));
    }
  });

  it('an illegal transition is a bug that fails loudly', () => {
    assertTransition('j', 'starting', 'running');
    assert.throws(() => assertTransition('j', 'exited', 'running'), (error: unknown) =>
      error instanceof JobworkerError && error.kind === 'internal' && /job j: state exited cannot go to running/.test(error.message));
    assert.throws(() => assertTransition('j', 'starting', 'exited'), JobworkerError);
  });

  const cases = [
    [{ exitCode: 0, signal: null, oomKilled: false, stoppedBy: null, timedOutAfterMs: null }, 'exited', 'exited with code 0'],
    [{ exitCode: 2, signal: null, oomKilled: false, stoppedBy: null, timedOutAfterMs: null }, 'failed', 'exited with code 2'],
    [{ exitCode: null, signal: 'SIGKILL', oomKilled: true, stoppedBy: null, timedOutAfterMs: null }, 'failed', 'killed by SIGKILL (out of memory)'],
    [{ exitCode: 0, signal: null, oomKilled: true, stoppedBy: null, timedOutAfterMs: null }, 'failed', 'exited with code 0 (a process was killed: out of memory)'],
    [{ exitCode: null, signal: 'SIGTERM', oomKilled: false, stoppedBy: 'alice', timedOutAfterMs: null }, 'stopped', 'stopped by alice: killed by SIGTERM'],
    [{ exitCode: 0, signal: null, oomKilled: false, stoppedBy: 'bob', timedOutAfterMs: null }, 'stopped', 'stopped by bob: exited with code 0'],
    [{ exitCode: null, signal: 'SIGTERM', oomKilled: false, stoppedBy: null, timedOutAfterMs: 600_000 }, 'failed', 'timed out after 10m: killed by SIGTERM'],
    [{ exitCode: 0, signal: null, oomKilled: false, stoppedBy: null, timedOutAfterMs: 5_400_500 }, 'failed', 'timed out after 5400500ms: exited with code 0'],
    [{ exitCode: null, signal: 'SIGKILL', oomKilled: false, stoppedBy: null, timedOutAfterMs: 90_000 }, 'failed', 'timed out after 1m30s: killed by SIGKILL'],
  ] as const;
  for (const [facts, state, reason] of cases) {
    it(`${JSON.stringify(facts)} → ${state}`, () => {
      const result = finalStateOf(facts);
      assert.equal(result.state, state);
      assert.equal(result.outcome.reason, reason);
    });
  }
});
