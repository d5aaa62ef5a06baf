// The host's user database, asked through NSS with getent(1): run directly (execFile, argv, no
// shell), one process per question. Why not parse /etc/passwd and /etc/group: users and groups
// may come from LDAP, sssd or systemd (nss-systemd lists systemd's own DynamicUser= uids and
// systemd-homed users), none of which are in those files, and a dynamic uid must never be one that
// any of them knows. getent is glibc's own front end to exactly what the C library would answer.
// The cost, a process per lookup, is paid at config load, at a start that names a user (answers
// reused for USER_LOOKUP_TTL_MS: cachingUserDatabase), and in batches of candidate uids for the
// dynamic pool (./dynamic-uids.ts), never per ordinary job start. The process is the addon's
// (./helper-process.ts), not a fork of the daemon.
import { JobworkerError } from '../errors';
import { runHelper, type HelperResult } from './helper-process';

export interface UserEntry {
  name: string;
  uid: number;
  /** Primary group. */
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
}

/** What the worker asks of the user database; tests may give their own. */
export interface UserDatabase {
  /** A user by name or by number (a decimal string); null if the database has none. */
  user(key: string): Promise<UserEntry | null>;
  /** A group by name or by number; null if none. */
  group(key: string): Promise<GroupEntry | null>;
  /** A user's supplementary groups as login would set them (initgroups(3)), primary group included. */
  groupsOf(name: string, primaryGid: number): Promise<number[]>;
  /** Which of these numbers the database knows, as uids (`passwd`) or gids (`group`). */
  knownIds(database: 'passwd' | 'group', ids: readonly number[]): Promise<Set<number>>;
}

const GETENT = 'getent';
// getent exits 2 when one or more keys were not found (its output has the others): not an error.
const NOT_FOUND_EXIT = 2;
const MAX_OUTPUT = 4 * 1024 * 1024;
const GETENT_TIMEOUT_MS = 30_000;

async function getent(args: readonly string[]): Promise<string> {
  const asked = `getent ${args.join(' ').slice(0, 80)}`;
  let result: HelperResult;
  try {
    result = await runHelper({
      command: GETENT,
      args,
      env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', LC_ALL: 'C' },
      timeoutMs: GETENT_TIMEOUT_MS,
      maxOutputBytes: MAX_OUTPUT,
    });
  } catch (error) {
    throw new JobworkerError('internal', `cannot ask the user database (${asked}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const { code, signal, stdout, outputTruncated, timedOut } = result;
  let why: string | null = null;
  if (timedOut) why = `no answer in ${GETENT_TIMEOUT_MS / 1000} s`;
  else if (outputTruncated) why = `more than ${MAX_OUTPUT} bytes of answer`;
  else if (code !== 0 && code !== NOT_FOUND_EXIT) why = code === null ? `killed by ${signal}` : `exit ${code}`;
  if (why !== null) throw new JobworkerError('internal', `cannot ask the user database (${asked}): ${why}`);
  return stdout;
}

/** The fields of `getent passwd|group` lines (name:x:id:…). */
function fields(stdout: string): string[][] {
  return stdout.split('\n').filter((line) => line !== '').map((line) => line.split(':'));
}

function parseId(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return null;
  const id = Number(text);
  return id <= 0xfffffffe ? id : null;
}

// getent takes a key as a name or a number alike; a name that looks like an option is refused here.
function checkKey(key: string): string {
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.@+-]{0,255}\$?$/.test(key)) {
    throw new JobworkerError('invalid-argument', `${JSON.stringify(key.slice(0, 64))} is not a user or group name or number`);
  }
  return key;
}

export const nssUserDatabase: UserDatabase = {
  async user(key) {
    const [entry] = fields(await getent(['passwd', checkKey(key)]));
    const uid = parseId(entry?.[2]);
    const gid = parseId(entry?.[3]);
    return entry === undefined || uid === null || gid === null ? null : { name: entry[0]!, uid, gid };
  },
  async group(key) {
    const [entry] = fields(await getent(['group', checkKey(key)]));
    const gid = parseId(entry?.[2]);
    return entry === undefined || gid === null ? null : { name: entry[0]!, gid };
  },
  async groupsOf(name, primaryGid) {
    // "alice           1000 27 100": the user's name, then every gid initgroups(3) would set.
    const line = (await getent(['initgroups', checkKey(name)])).trim();
    const gids = line.split(/\s+/).slice(1).map(parseId).filter((gid): gid is number => gid !== null);
    return [...new Set([primaryGid, ...gids])];
  },
  async knownIds(database, ids) {
    const known = new Set<number>();
    if (ids.length === 0) return known;
    for (const entry of fields(await getent([database, ...ids.map(String)]))) {
      const id = parseId(entry[2]);
      if (id !== null) known.add(id);
    }
    return known;
  },
};

/** How long an answer about a user or group is reused (nscd keeps its positive answers 600 s). */
export const USER_LOOKUP_TTL_MS = 10_000;
const USER_LOOKUP_MAX_ENTRIES = 1024;

/**
 * `db` with its answers about users, groups and group lists reused for `ttlMs`, so a stream of
 * starts as one user costs one getent per question per TTL instead of three processes per start
 * (~20 ms a start here). A user removed from the database is still resolved for at most `ttlMs`.
 * Concurrent questions share one lookup; failures are not kept. knownIds() (the dynamic pool's
 * batches, which must see the database as it is) is never cached.
 */
export function cachingUserDatabase(db: UserDatabase, ttlMs = USER_LOOKUP_TTL_MS, now: () => number = Date.now): UserDatabase {
  const answers = new Map<string, { until: number; answer: Promise<unknown> }>();
  function cached<T>(key: string, ask: () => Promise<T>): Promise<T> {
    const hit = answers.get(key);
    if (hit !== undefined && hit.until > now()) return hit.answer as Promise<T>;
    if (answers.size >= USER_LOOKUP_MAX_ENTRIES) answers.clear();
    const answer = ask();
    answers.set(key, { until: now() + ttlMs, answer });
    answer.catch(() => answers.delete(key));
    return answer;
  }
  return {
    user: (key) => cached(`u:${key}`, () => db.user(key)),
    group: (key) => cached(`g:${key}`, () => db.group(key)),
    groupsOf: (name, primaryGid) => cached(`i:${name}:${primaryGid}`, () => db.groupsOf(name, primaryGid)),
    knownIds: (database, ids) => db.knownIds(database, ids),
  };
}
