// A pool job's record in the jobs bucket: what was asked (the spec, the owner), where it is (state,
// host) and how it ended. Written only by daemons, read by every daemon — and still checked as
// untrusted input on every read: a record that does not match this schema is ignored (and logged),
// never served or run.
import * as t from 'typanion';

import { isJobId } from '../job-id';
import type { CgroupStats, JobState, Limits } from '../worker';
import { isHostName, isPoolName } from './names';

export type PoolJobState = JobState | 'queued';

export const POOL_JOB_STATES: readonly PoolJobState[] = ['queued', 'starting', 'running', 'exited', 'failed', 'stopped', 'lost'];

/** What the runner passes to Worker.start (everything but the owner, which is the record's). */
export interface PoolJobSpec {
  command: string;
  args: string[];
  env: Record<string, string> | null;
  cwd: string | null;
  limits: Limits;
  /** A user by number an admin asked for; null: the runner daemon's default (a dynamic uid). */
  user: { uid: number; gid: number; groups?: number[] } | null;
}

export interface PoolJobOutcome {
  exitCode: number | null;
  signal: string | null;
  oomKilled: boolean;
  stoppedBy: string | null;
  reason: string;
}

/** The record as stored (JSON): times are milliseconds since the epoch. */
export interface PoolJobRecord {
  v: 1;
  id: string;
  pool: string;
  owner: string;
  spec: PoolJobSpec;
  retries: number;
  /** Runs begun: 0 while first queued, +1 at each claim. */
  attempts: number;
  state: PoolJobState;
  /** The daemon that claimed it (its host name, the process instance, where clients reach it). */
  host: string | null;
  instance: string | null;
  address: string | null;
  pid: number | null;
  outcome: PoolJobOutcome | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  log: { bytes: number; droppedBytes: number; truncated: boolean; writeError: string | null };
  stats: CgroupStats | null;
  /** Its message in the pool's stream while queued (0: not known), so a stop can delete it. */
  queueSeq: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const isCount = t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(0, MAX_SAFE)]);
const isMaybeCount = t.isNullable(isCount);
const isText = (max: number) => t.cascade(t.isString(), [t.hasMaxLength(max)]);
const isMaybeText = (max: number) => t.isNullable(isText(max));
const isId32 = t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(0, 0xfffffffe)]);

const isLimits = t.isObject({
  cpu: t.isOptional(t.cascade(t.isNumber(), [t.isInInclusiveRange(0, 1024)])),
  cpuWeight: t.isOptional(isCount),
  memoryBytes: t.isOptional(isCount),
  memoryHighBytes: t.isOptional(isCount),
  pids: t.isOptional(isCount),
  io: t.isOptional(
    t.cascade(
      t.isArray(
        t.isObject({
          device: t.isOptional(isText(4096)),
          readBps: t.isOptional(isCount),
          writeBps: t.isOptional(isCount),
          readIops: t.isOptional(isCount),
          writeIops: t.isOptional(isCount),
        }),
      ),
      [t.hasMaxLength(16)],
    ),
  ),
});

const isStats = t.isObject({
  cpuUsageMicros: isCount,
  cpuUserMicros: isCount,
  cpuSystemMicros: isCount,
  cpuThrottledPeriods: isCount,
  cpuThrottledMicros: isCount,
  memoryCurrentBytes: isCount,
  memoryPeakBytes: isMaybeCount,
  oomKills: isCount,
  pidsCurrent: isCount,
  io: t.cascade(
    t.isArray(t.isObject({ device: isText(32), readBytes: isCount, writeBytes: isCount, readOps: isCount, writeOps: isCount })),
    [t.hasMaxLength(256)],
  ),
});

const isRecord = t.isObject({
  v: t.isLiteral(1),
  id: t.cascade(t.isString(), [t.matchesRegExp(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)]),
  pool: t.cascade(t.isString(), [t.matchesRegExp(/^[a-z0-9][a-z0-9-]{0,31}$/)]),
  owner: isText(256),
  spec: t.isObject({
    command: isText(4096),
    args: t.cascade(t.isArray(t.isString()), [t.hasMaxLength(4096)]),
    env: t.isNullable(t.isRecord(t.isString())),
    cwd: isMaybeText(4096),
    limits: isLimits,
    user: t.isNullable(t.isObject({ uid: isId32, gid: isId32, groups: t.isOptional(t.cascade(t.isArray(isId32), [t.hasMaxLength(64)])) })),
  }),
  retries: t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(0, 10)]),
  attempts: t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(0, 11)]),
  state: t.isEnum(POOL_JOB_STATES),
  host: isMaybeText(64),
  instance: isMaybeText(64),
  address: isMaybeText(300),
  pid: isMaybeCount,
  outcome: t.isNullable(
    t.isObject({ exitCode: t.isNullable(t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(-2147483648, 2147483647)])), signal: isMaybeText(16), oomKilled: t.isBoolean(), stoppedBy: isMaybeText(256), reason: isText(1024) }),
  ),
  createdAt: isCount,
  startedAt: isMaybeCount,
  finishedAt: isMaybeCount,
  log: t.isObject({ bytes: isCount, droppedBytes: isCount, truncated: t.isBoolean(), writeError: isMaybeText(64) }),
  stats: t.isNullable(isStats),
  queueSeq: isCount,
});

/** Parses a record read from NATS; throws an Error naming what is wrong. `key` is the KV key it came under. */
export function decodePoolRecord(key: string, bytes: Uint8Array): PoolJobRecord {
  if (bytes.length > 2 << 20) throw new Error(`record ${key.slice(0, 40)}: ${bytes.length} bytes, more than any daemon writes`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  } catch (error) {
    throw new Error(`record ${key.slice(0, 40)}: not JSON (${(error as Error).message})`);
  }
  const errors: string[] = [];
  if (!isRecord(value, { errors })) throw new Error(`record ${key.slice(0, 40)}: ${errors.slice(0, 3).join('; ')}`);
  if (value.id !== key || !isJobId(value.id)) throw new Error(`record ${key.slice(0, 40)}: its id ${value.id} is not its key`);
  if (!isPoolName(value.pool)) throw new Error(`record ${key}: bad pool name`);
  if (value.host !== null && !isHostName(value.host)) throw new Error(`record ${key}: bad host name`);
  // Claimed states name their runner; a queued record names none.
  if ((value.state === 'starting' || value.state === 'running') && (value.host === null || value.instance === null || value.address === null)) {
    throw new Error(`record ${key}: ${value.state} without a host`);
  }
  return value as PoolJobRecord;
}

export function encodePoolRecord(record: PoolJobRecord): Uint8Array {
  return Buffer.from(JSON.stringify(record), 'utf8');
}

export function isFinalPoolState(state: PoolJobState): boolean {
  return state === 'exited' || state === 'failed' || state === 'stopped' || state === 'lost';
}
