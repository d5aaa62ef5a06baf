// statusOf: what any handler's error becomes on the wire, and the bound on its message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ValidationError } from '../../src/errors';
import { boundedDetails, MAX_DETAILS_BYTES, statusOf } from '../../src/server/status';

describe('status messages', () => {
  it('a short message goes as it is', () => {
    assert.equal(boundedDetails('cwd: must be an absolute path'), 'cwd: must be an absolute path');
  });

  it('a message over 4 KiB is cut at a character, says how long it was, and fits the bound', () => {
    const long = `env.X: ${'é'.repeat(5000)}`; // two bytes each: a cut can fall inside one
    const cut = boundedDetails(long);
    assert.ok(Buffer.byteLength(cut) <= MAX_DETAILS_BYTES, `${Buffer.byteLength(cut)} bytes`);
    assert.match(cut, /^env\.X: é+ … \(cut: 10007 bytes in all\)$/);
    assert.ok(!cut.includes('\uFFFD'));
  });

  it('statusOf bounds every kind of error it maps', () => {
    const status = statusOf(new ValidationError('env.PATH', 'x'.repeat(100_000)));
    assert.ok(Buffer.byteLength(status.details) <= MAX_DETAILS_BYTES);
    assert.match(status.details, /^env\.PATH: x+ … \(cut: 100010 bytes in all\)$/);
  });
});
