import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ValidationError } from '../../src/errors';
import { DEFAULT_JOB_PATH, resolveJobSpec, SPEC_BOUNDS, type JobSpec } from '../../src/worker/job-spec';

function rejects(spec: unknown, field: string, reason: RegExp): void {
  assert.throws(
    () => resolveJobSpec(spec as JobSpec),
    (e: unknown) => e instanceof ValidationError && e.field === field && reason.test(e.message),
  );
}

describe('job spec validation', () => {
  it('applies defaults', () => {
    assert.deepEqual(resolveJobSpec({ command: 'true' }), {
      command: 'true',
      args: [],
      env: { PATH: DEFAULT_JOB_PATH },
      cwd: null, // a scratch directory of its own, made when it starts
      limits: {},
      owner: '',
      user: null,
      isolation: undefined,
      maxRuntimeMs: null,
      name: null,
      labels: {},
    });
  });

  it('a maximum runtime: whole milliseconds up to setTimeout\'s longest delay', () => {
    assert.equal(resolveJobSpec({ command: 'true', maxRuntimeMs: 600_000 }).maxRuntimeMs, 600_000);
    assert.equal(resolveJobSpec({ command: 'true', maxRuntimeMs: SPEC_BOUNDS.maxRuntimeMs }).maxRuntimeMs, 2_147_483_647);
    for (const bad of [0, -1, 1.5, SPEC_BOUNDS.maxRuntimeMs + 1, Number.NaN]) {
      rejects({ command: 'true', maxRuntimeMs: bad }, 'maxRuntimeMs', /must be an integer from 1 to 2147483647/);
    }
  });

  it('checks who a job runs as: one of uid and name, one of gid and group, names that cannot be options', () => {
    assert.deepEqual(resolveJobSpec({ command: 'x', user: 'dynamic' }).user, 'dynamic');
    assert.deepEqual(resolveJobSpec({ command: 'x', user: { name: 'alice', groups: ['docker', 27] } }).user, { kind: 'requested', name: 'alice', groups: ['docker', 27] });
    assert.deepEqual(resolveJobSpec({ command: 'x', user: { uid: 0, gid: 0, kind: 'mapped' } }).user, { kind: 'mapped', uid: 0, gid: 0 });
    rejects({ command: 'x', user: {} }, 'user', /give uid or name/);
    rejects({ command: 'x', user: { uid: 1, name: 'a' } }, 'user', /both only with gid and groups/);
    assert.deepEqual(resolveJobSpec({ command: 'x', user: { uid: 1, name: 'a', gid: 2, groups: [] } }).user, { kind: 'requested', uid: 1, name: 'a', gid: 2, groups: [] });
    rejects({ command: 'x', user: { uid: 1, gid: 1, group: 'a' } }, 'user', /at most one of gid and group/);
    rejects({ command: 'x', user: { name: '-rf' } }, 'user.name', /user or group name/);
    rejects({ command: 'x', user: { name: 'a b' } }, 'user.name', /user or group name/);
    rejects({ command: 'x', user: { uid: 4294967295 } }, 'user.uid', /0 to 4294967294/);
    rejects({ command: 'x', user: { uid: 1, groups: ['--all'] } }, 'user.groups[0]', /user or group name/);
    rejects({ command: 'x', user: { uid: 1, groups: Array(65).fill(1) } }, 'user.groups', /at most 64/);
    rejects({ command: 'x', user: 'root' }, 'user', /"dynamic" or an object/);
  });

  it('refuses bad input, naming the field', () => {
    rejects({ command: '' }, 'command', /must not be empty/);
    rejects({ command: 'a\0b' }, 'command', /NUL/);
    rejects({ command: 7 }, 'command', /must be a string/);
    rejects({ command: 'x'.repeat(SPEC_BOUNDS.commandBytes + 1) }, 'command', /longer than 4096 bytes/);
    rejects({ command: 'echo', args: 'nope' }, 'args', /array/);
    rejects({ command: 'echo', args: ['ok', 'bad\0'] }, 'args[1]', /NUL/);
    rejects({ command: 'echo', args: Array(SPEC_BOUNDS.argCount + 1).fill('') }, 'args', /more than 4096 entries/);
    rejects({ command: 'echo', args: ['x'.repeat(SPEC_BOUNDS.stringBytes + 1)] }, 'args[0]', /longer than/);
    rejects({ command: 'echo', args: Array(16).fill('x'.repeat(100_000)) }, 'args', /together exceed/);
    rejects({ command: 'echo', env: { 'A=B': '1' } }, 'env.A=B', /must not contain "="/);
    rejects({ command: 'echo', env: { '': '1' } }, 'env name', /must not be empty/);
    rejects({ command: 'echo', env: { A: 'x\0' } }, 'env.A', /NUL/);
    rejects({ command: 'echo', env: ['A=1'] }, 'env', /object/);
    rejects({ command: 'echo', cwd: 'relative' }, 'cwd', /absolute/);
    rejects({ command: 'echo', cwd: '/proc/1/cwd' }, 'cwd', /under \/proc, whose links lead outside the job's view/);
    rejects({ command: 'echo', cwd: '//proc/self/fd/18' }, 'cwd', /under \/proc/);
    rejects({ command: 'echo', cwd: '/tmp/../proc' }, 'cwd', /under \/proc/);
    rejects({ command: 'echo', user: { uid: -1, gid: 0 } }, 'user.uid', /integer/);
    rejects({ command: 'echo', user: { uid: 0, gid: 1.5 } }, 'user.gid', /integer/);
  });

  it('counts bytes, not characters', () => {
    const fourByteChars = '😀'.repeat(1025); // 4100 bytes, 2050 UTF-16 units
    rejects({ command: fourByteChars }, 'command', /longer than 4096 bytes/);
  });
});
