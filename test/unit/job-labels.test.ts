// Job names and labels: what they may be (every refusal names its field and says what is allowed),
// label selectors, and the per-owner name index the Worker keeps.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';

import { ValidationError } from '../../src/errors';
import { isJobName } from '../../src/job-id';
import { checkJobName, checkLabels, LABEL_BOUNDS, matchesLabels, parseLabelSelector } from '../../src/worker/job-labels';
import { JobNames } from '../../src/worker/job-names';
import { resolveJobSpec } from '../../src/worker/job-spec';

function refused(run: () => unknown, field: string, reason: RegExp): void {
  assert.throws(run, (e: unknown) => e instanceof ValidationError && e.field === field && reason.test(e.message), `${field}: ${reason}`);
}

describe('job names', () => {
  it('1-64 letters, digits, "_", "." and "-", starting with a letter or digit', () => {
    for (const good of ['web', 'a', 'Nightly_build.2-x', '9lives', 'x'.repeat(64)]) assert.equal(checkJobName('name', good), good);
    for (const bad of ['-web', '.hidden', '_x', 'a b', 'a/b', 'é', 'x'.repeat(65), 'tab\t']) refused(() => checkJobName('name', bad), 'name', /must be 1-64 letters, digits, '_', '\.' or '-', starting with a letter or digit, and not a UUID/);
    assert.equal(checkJobName('name', undefined), null);
    assert.equal(checkJobName('name', ''), null, 'empty: no name (the wire has no absent string)');
    refused(() => checkJobName('name', 7), 'name', /got number/);
  });

  it('never a job id, in any case: names and ids cannot be confused', () => {
    const id = randomUUID();
    assert.equal(isJobName(id), false);
    assert.equal(isJobName(id.toUpperCase()), false);
    refused(() => checkJobName('name', id), 'name', /not a UUID/);
    assert.equal(isJobName(id.slice(0, 8)), true, 'the start of an id is a name (job-cli tries it as a name first, as docker does)');
  });

  it('resolveJobSpec takes them from the start options', () => {
    const spec = resolveJobSpec({ command: 'true' }, { name: 'web', labels: { tier: 'front' } });
    assert.equal(spec.name, 'web');
    assert.deepEqual(spec.labels, { tier: 'front' });
    refused(() => resolveJobSpec({ command: 'true' }, { name: 'no spaces' }), 'name', /must be/);
  });
});

describe('job labels', () => {
  it('keys: a name of 1-63 characters, optionally after a DNS prefix and "/"', () => {
    const good = { tier: 'web', 'app.kubernetes.io/name': 'x', 'example.com/a_b-c.d': '', A9: 'v', ['k'.repeat(63)]: 'v' };
    assert.deepEqual(checkLabels('labels', good), good);
    for (const key of ['', '-x', 'x-', '_x', 'a b', 'k'.repeat(64), 'Example.com/x', 'ex_ample.com/x', '/x', 'a/b/c', 'example.com/', `${'a'.repeat(254)}/x`]) {
      refused(() => checkLabels('labels', { [key]: 'v' }), 'labels', /label key/);
    }
  });

  it('values: at most 255 bytes, no control characters, valid Unicode', () => {
    assert.deepEqual(checkLabels('labels', { note: 'a, b = c; "d"', v: 'é'.repeat(127) }), { note: 'a, b = c; "d"', v: 'é'.repeat(127) });
    refused(() => checkLabels('labels', { v: 'é'.repeat(128) }), 'labels', /value of label v is longer than 255 bytes/);
    for (const bad of ['a\nb', 'tab\there', 'nul\0', 'del\x7f', 'c1\x85']) refused(() => checkLabels('labels', { v: bad }), 'labels', /must not contain control characters/);
    refused(() => checkLabels('labels', { v: 'half \ud800 a pair' }), 'labels', /valid Unicode/);
    refused(() => checkLabels('labels', { v: 7 }), 'labels', /must be a string/);
  });

  it('at most 32 labels, 8 KiB of keys and values together', () => {
    const many = (count: number, valueBytes: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`key${i}`, 'v'.repeat(valueBytes)]));
    assert.equal(Object.keys(checkLabels('labels', many(LABEL_BOUNDS.count, 200))).length, 32);
    refused(() => checkLabels('labels', many(LABEL_BOUNDS.count + 1, 0)), 'labels', /has 33 labels; at most 32/);
    refused(() => checkLabels('labels', many(LABEL_BOUNDS.count, 255)), 'labels', /together; at most 8192/);
    refused(() => checkLabels('labels', ['a=b']), 'labels', /must be an object/);
  });
});

describe('label selectors', () => {
  it('"key=value" and "key" terms; every one must match', () => {
    const selector = parseLabelSelector('label_selector', ['tier=web', 'team', 'note=a=b']);
    assert.deepEqual(selector, [{ key: 'tier', value: 'web' }, { key: 'team', value: null }, { key: 'note', value: 'a=b' }]);
    assert.equal(matchesLabels({ tier: 'web', team: '', note: 'a=b' }, selector), true);
    assert.equal(matchesLabels({ tier: 'web', team: 'ops' }, selector), false, 'note missing');
    assert.equal(matchesLabels({ tier: 'Web', team: 'ops', note: 'a=b' }, selector), false, 'values are case-sensitive');
    assert.equal(matchesLabels({}, []), true, 'no terms: every job');
    assert.equal(matchesLabels({ constructor: 'x' }, parseLabelSelector('s', ['toString'])), false, 'only the job\'s own labels');
    assert.equal(matchesLabels({ empty: '' }, parseLabelSelector('s', ['empty='])), true);
  });

  it('a bad term names its index in the field', () => {
    refused(() => parseLabelSelector('label_selector', ['tier=web', 'bad key=x']), 'label_selector[1]', /label key "bad key".*\(a term is "key=value" or "key"\)/);
    refused(() => parseLabelSelector('label_selector', ['=web']), 'label_selector[0]', /label key ""/);
    refused(() => parseLabelSelector('label_selector', ['k=\n']), 'label_selector[0]', /control characters/);
    refused(() => parseLabelSelector('label_selector', Array.from({ length: 33 }, () => 'k')), 'label_selector', /at most 32/);
  });
});

describe('the name index', () => {
  it('one job per name and owner; other owners may use it; freed by the job that has it only', () => {
    const names = new JobNames();
    assert.equal(names.claim('alice', 'web', 'a1'), null);
    assert.equal(names.claim('alice', 'web', 'a2'), 'a1', 'taken: the holder is named');
    assert.equal(names.claim('alice', 'web', 'a1'), null, 'the holder again: nothing changes');
    assert.equal(names.claim('bob', 'web', 'b1'), null);
    assert.equal(names.idOf('alice', 'web'), 'a1');
    assert.deepEqual(names.idsOf('web').sort(), ['a1', 'b1']);
    names.release('alice', 'web', 'a2'); // not the holder
    assert.equal(names.idOf('alice', 'web'), 'a1');
    names.release('alice', 'web', 'a1');
    assert.equal(names.idOf('alice', 'web'), undefined);
    assert.equal(names.claim('alice', 'web', 'a2'), null, 'free again once released');
    names.release('bob', 'web', 'b1');
    names.release('alice', 'web', 'a2');
    assert.deepEqual(names.idsOf('web'), []);
  });
});
