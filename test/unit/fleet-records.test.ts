// What the fleet reads from NATS is untrusted input: a record, a heartbeat or a queue message that is
// not exactly what a daemon writes is refused, never served or run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodePoolRecord, encodePoolRecord, type PoolJobRecord } from '../../src/fleet/pool-record';
import { jobIdOfMessage } from '../../src/fleet/pool-queue';

const ID = '0b7c5a3e-4f1d-4c1a-9d0e-2b9f6e8a1c3d';

function record(overrides: Partial<PoolJobRecord> = {}): PoolJobRecord {
  return {
    v: 1,
    id: ID,
    pool: 'batch',
    owner: 'alice',
    spec: { command: 'sh', args: ['-c', 'echo hi'], env: null, cwd: null, limits: { memoryBytes: 1 << 26 }, user: null },
    retries: 1,
    attempts: 0,
    state: 'queued',
    host: null,
    instance: null,
    address: null,
    pid: null,
    outcome: null,
    createdAt: Date.now(),
    startedAt: null,
    finishedAt: null,
    log: { bytes: 0, droppedBytes: 0, truncated: false, writeError: null },
    stats: null,
    queueSeq: 0,
    ...overrides,
  };
}

const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('pool job records read from NATS', () => {
  it('round-trips what a daemon writes', () => {
    const written = record({ state: 'running', host: 'w1', instance: 'i', address: 'w1:50051', pid: 42, attempts: 1 });
    assert.deepEqual(decodePoolRecord(ID, encodePoolRecord(written)), written);
  });

  it('refuses anything else, naming the key', () => {
    const cases: [string, unknown][] = [
      ['not JSON', '{'],
      ['another key than its id', record({ id: '1b7c5a3e-4f1d-4c1a-9d0e-2b9f6e8a1c3d' })],
      ['a pool name with a subject wildcard', record({ pool: 'batch.>' })],
      ['an unknown state', { ...record(), state: 'zombie' }],
      ['a running job without its host', record({ state: 'running' })],
      ['retries beyond 10', record({ retries: 11 })],
      ['a pid beyond 2^53', { ...record(), pid: 2 ** 60 }],
      ['a negative size', record({ log: { bytes: -1, droppedBytes: 0, truncated: false, writeError: null } })],
      ['args that are not strings', { ...record(), spec: { ...record().spec, args: [1] } }],
      ['a host name with a slash', record({ state: 'running', host: 'w1/../x', instance: 'i', address: 'a:1' })],
      ['another version', { ...record(), v: 2 }],
    ];
    for (const [what, value] of cases) {
      assert.throws(() => decodePoolRecord(ID, typeof value === 'string' ? Buffer.from(value) : bytes(value)), new RegExp(`record ${ID.slice(0, 8)}`), what);
    }
  });

  it('takes only a job id from a queue message', () => {
    assert.equal(jobIdOfMessage(bytes({ id: ID })), ID);
    for (const payload of [bytes({ id: 'x' }), bytes({}), bytes([ID]), Buffer.from('nope'), bytes({ id: ID, pad: 'x'.repeat(300) })]) {
      assert.equal(jobIdOfMessage(payload), null);
    }
  });
});
