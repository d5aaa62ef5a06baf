// A light, fixed-seed run of the log-reader fuzzing that the reliability suite runs at length
// (test/helpers/reliability-log-fuzz.ts): damaged logs read every way the daemon reads them give
// back every intact record and fail only with the documented errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { fuzzLogReader } from '../helpers/reliability-log-fuzz';

describe('log reader under damaged files (fast-check)', () => {
  it('truncated, flipped, zeroed and garbage logs: only documented errors, intact records returned', { timeout: 60_000 }, async () => {
    const figures = await fuzzLogReader({ numRuns: 150, seed: 20261128 });
    assert.equal(figures.runs, 150);
  });
});
