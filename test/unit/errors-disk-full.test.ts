// A full disk under the state directory is the host's state, not a bug: it answers
// RESOURCE_EXHAUSTED, never INTERNAL (found by the reliability suite's disk-full scenario, where a
// StartJob on a full tmpfs answered INTERNAL "cannot create the log file …: ENOSPC").
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { status as GrpcStatus } from '@grpc/grpc-js';

import { systemError } from '../../src/errors';
import { SpawnError } from '../../src/native';
import { statusOf } from '../../src/server/status';

function errno(code: string): Error {
  return Object.assign(new Error(`${code} (test)`), { code });
}

describe('errors on a full disk', () => {
  it('systemError: ENOSPC and EDQUOT are resource-exhausted, other codes keep their kind', () => {
    assert.equal(systemError('write job record', '/state/x', errno('ENOSPC')).kind, 'resource-exhausted');
    assert.equal(systemError('create job directory', '/state/x', errno('EDQUOT'), 'unavailable').kind, 'resource-exhausted');
    assert.equal(systemError('write job record', '/state/x', errno('EACCES')).kind, 'internal');
    assert.equal(systemError('open', '/x', errno('ENOENT'), 'not-found').kind, 'not-found');
  });

  it('a spawn whose log file cannot be created on a full disk: RESOURCE_EXHAUSTED with the path and errno', () => {
    const error = new SpawnError('cannot create the log file /state/logs/x.log: ENOSPC (No space left on device)', { stage: 'log', code: 'ENOSPC', path: '/state/logs/x.log' });
    assert.equal(error.kind, 'resource-exhausted');
    const status = statusOf(error);
    assert.equal(status.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(status.details, /log file .*ENOSPC/);
    assert.equal(new SpawnError('x', { stage: 'log', code: 'EACCES' }).kind, 'internal');
  });
});
