// The cache in front of the host's user database: a stream of starts as one user asks getent once
// per question per TTL, and nothing stale or failed outlives it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cachingUserDatabase, type UserDatabase } from '../../src/worker/user-database';

function countingDatabase(): { db: UserDatabase; asked: string[]; failNext: { on: boolean } } {
  const asked: string[] = [];
  const failNext = { on: false };
  const db: UserDatabase = {
    async user(key) {
      asked.push(`user ${key}`);
      if (failNext.on) {
        failNext.on = false;
        throw new Error('getent failed');
      }
      return key === 'nobody' ? null : { name: key, uid: 1000, gid: 1000 };
    },
    async group(key) {
      asked.push(`group ${key}`);
      return { name: key, gid: 1000 };
    },
    async groupsOf(name, gid) {
      asked.push(`groupsOf ${name}`);
      return [gid, 27];
    },
    async knownIds(_database, ids) {
      asked.push(`knownIds ${ids.join(',')}`);
      return new Set(ids);
    },
  };
  return { db, asked, failNext };
}

describe('cachingUserDatabase', () => {
  it('answers a repeated question from the cache until the TTL ends, and shares a lookup in flight', async () => {
    let clock = 0;
    const { db, asked } = countingDatabase();
    const cached = cachingUserDatabase(db, 10_000, () => clock);
    const [a, b] = await Promise.all([cached.user('alice'), cached.user('alice')]);
    assert.deepEqual(a, { name: 'alice', uid: 1000, gid: 1000 });
    assert.equal(a, b);
    assert.equal(await cached.user('nobody'), null);
    assert.equal(await cached.user('nobody'), null, 'an answer of "no such user" is kept too');
    assert.deepEqual(await cached.groupsOf('alice', 1000), [1000, 27]);
    await cached.groupsOf('alice', 1000);
    await cached.group('wheel');
    await cached.group('wheel');
    assert.deepEqual(asked, ['user alice', 'user nobody', 'groupsOf alice', 'group wheel']);
    clock = 10_001;
    await cached.user('alice');
    assert.deepEqual(asked.slice(4), ['user alice'], 'asked again after the TTL');
  });

  it('keeps no failure, and never caches knownIds (the dynamic pool must see the database as it is)', async () => {
    const { db, asked, failNext } = countingDatabase();
    const cached = cachingUserDatabase(db, 10_000, () => 0);
    failNext.on = true;
    await assert.rejects(cached.user('alice'), /getent failed/);
    assert.deepEqual(await cached.user('alice'), { name: 'alice', uid: 1000, gid: 1000 });
    await cached.knownIds('passwd', [5, 6]);
    await cached.knownIds('passwd', [5, 6]);
    assert.deepEqual(asked, ['user alice', 'user alice', 'knownIds 5,6', 'knownIds 5,6']);
  });
});
