// Dynamic users, systemd's DynamicUser= model: a job with no user of its own runs as a uid taken
// from a configured range for its lifetime only. A uid is never given to two live jobs, never one
// the user database knows (as a user or, since gid = uid, as a group), and comes back only once
// nothing of its job is left (cgroup empty, scratch directory gone: the Worker releases it then).
// A uid whose job would not die is kept out of use until the worker is opened again.
//
// Checking the database costs a getent process, so candidates are checked in batches ahead of
// need (like spare logs) and a check is trusted for CHECK_TTL_MS: a user added to the database in
// that window may still be handed out once. Batches ahead of need are large (each is two getent
// processes, passwd and group) so that few processes are started; a start that finds nothing
// checked waits for a small one.
// Candidates come round-robin through the range, so a released uid is used again as late as
// possible.
import { JobworkerError, ValidationError } from '../errors';
import type { UserDatabase } from './user-database';

export interface DynamicUidRange {
  /** First uid of the range. */
  first: number;
  /** How many uids (each job holds one while it lives). */
  count: number;
}

/**
 * 0x70000000..0x7000FFFF: in the part of the uid space systemd documents as unused (between the
 * container range, 524288..1879048191, and the foreign range at 2147352576), so it meets neither
 * systemd's own DynamicUser= range (61184..65519, whose allocations only nss-systemd can see),
 * nspawn's per-container ranges, regular and system users, nor the usual /etc/subuid ranges
 * (100000 upwards). Below 2^31, so no program that keeps uids in a signed int misreads it.
 */
export const DEFAULT_DYNAMIC_UID_RANGE: DynamicUidRange = { first: 0x7000_0000, count: 0x1_0000 };

const MAX_ID = 0xfffffffe;
/** uids a range may not contain: root, nobody (65534) and the 16-bit -1 (65535). */
const RESERVED = [0, 65534, 65535];
/**
 * Candidates per check ahead of need; a refill starts when fewer than LOW_WATER checked uids are
 * left. A start that finds none checked waits for a smaller batch (getent's lookups take ~0.15 ms
 * a uid here: 512 take ~80 ms, 64 ~15).
 */
const BATCH = 512;
const WAITED_FOR_BATCH = 64;
const LOW_WATER = 128;
const CHECK_TTL_MS = 60_000;

export function checkDynamicUidRange(field: string, range: DynamicUidRange): DynamicUidRange {
  const { first, count } = range;
  if (!Number.isInteger(first) || first < 1 || first > MAX_ID) throw new ValidationError(`${field}.first`, `must be an integer from 1 to ${MAX_ID}`);
  if (!Number.isInteger(count) || count < 1 || first + count - 1 > MAX_ID) {
    throw new ValidationError(`${field}.count`, `must be at least 1 and keep the range below ${MAX_ID + 1}`);
  }
  for (const id of RESERVED) {
    if (id >= first && id < first + count) throw new ValidationError(field, `${first}..${first + count - 1} contains ${id}, which is never a dynamic uid`);
  }
  return { first, count };
}

interface CheckedUid {
  uid: number;
  checkedAt: number;
}

export class DynamicUids {
  readonly range: DynamicUidRange;
  #db: UserDatabase;
  #live = new Set<number>();
  /** Checked free, ready to hand out (oldest checks first). */
  #ready: CheckedUid[] = [];
  /** The uids in #ready. */
  #readyUids = new Set<number>();
  #cursor = 0;
  #refill: Promise<boolean> | null = null;
  #now: () => number;

  constructor(range: DynamicUidRange, db: UserDatabase, now: () => number = Date.now) {
    this.range = checkDynamicUidRange('dynamicUids', range);
    this.#db = db;
    this.#now = now;
  }

  /** uids held by live jobs (or kept out of use), for reports and tests. */
  get inUse(): ReadonlySet<number> {
    return this.#live;
  }

  /** A uid no live job holds and the user database does not know; held until release(). */
  async allocate(): Promise<number> {
    for (;;) {
      const now = this.#now();
      while (this.#ready.length > 0) {
        const candidate = this.#ready.shift()!;
        this.#readyUids.delete(candidate.uid);
        if (now - candidate.checkedAt > CHECK_TTL_MS || this.#live.has(candidate.uid)) continue;
        this.#live.add(candidate.uid);
        if (this.#ready.length < LOW_WATER) void this.#startRefill().catch(() => undefined);
        return candidate.uid;
      }
      // Others waiting on the same refill may have taken all it found: then look again; only a
      // lap of the whole range that found nothing free means there is none.
      if ((await this.#startRefill()) || this.#ready.length > 0) continue;
      throw new JobworkerError(
        'resource-exhausted',
        `no free dynamic uid: all ${this.range.count} of ${this.range.first}..${this.range.first + this.range.count - 1} are held by live jobs or known to the user database (widen dynamicUids)`,
      );
    }
  }

  /** Gives a uid back: its job is over and nothing of it is left. */
  release(uid: number): void {
    this.#live.delete(uid);
  }

  /** Keeps a uid out of use (a job whose processes would not die; one recovered still running). */
  hold(uid: number): void {
    if (uid >= this.range.first && uid < this.range.first + this.range.count) this.#live.add(uid);
  }

  contains(uid: number): boolean {
    return uid >= this.range.first && uid < this.range.first + this.range.count;
  }

  /**
   * Resolves once no check is running (its getent processes have exited). A closing worker waits
   * for this: a process of its own left running would keep its cgroup from being removed.
   */
  async settled(): Promise<void> {
    await this.#refill?.catch(() => undefined);
  }

  /** Resolves true if the refill found a free uid (it may be taken by the time the caller looks). */
  #startRefill(): Promise<boolean> {
    this.#refill ??= this.#checkNextBatch().finally(() => (this.#refill = null));
    return this.#refill;
  }

  /** Checks the next candidates of the range against the database; one full lap at most. */
  async #checkNextBatch(): Promise<boolean> {
    const { first, count } = this.range;
    let looked = 0;
    const batch = this.#ready.length === 0 ? WAITED_FOR_BATCH : BATCH;
    while (looked < count) {
      const candidates: number[] = [];
      while (candidates.length < Math.min(batch, count) && looked < count) {
        const uid = first + this.#cursor;
        this.#cursor = (this.#cursor + 1) % count;
        looked++;
        if (!this.#live.has(uid) && !this.#readyUids.has(uid)) candidates.push(uid);
      }
      if (candidates.length === 0) continue;
      const [users, groups] = await Promise.all([this.#db.knownIds('passwd', candidates), this.#db.knownIds('group', candidates)]);
      const checkedAt = this.#now();
      for (const uid of candidates) {
        if (users.has(uid) || groups.has(uid)) continue;
        this.#ready.push({ uid, checkedAt });
        this.#readyUids.add(uid);
      }
      if (this.#ready.length > 0) return true;
    }
    return false;
  }
}
