// What recovery writes into records (./recovery.ts): a job found starting or running becomes lost
// with the reason that is true; a record whose log is gone counts its output as dropped; a job known
// only from its log (and spec file) is rebuilt from what they say, and nothing else.
import type { CgroupStats } from '../cgroup';
import { FILE_HEADER_SIZE } from '../logs/format';
import type { LogScan } from '../logs/repair';
import type { JobRecord, RecordedSpec } from './job-record';
import { lostOutcome } from './job-state';

/** Whether a damaged journal line came after a job's last intact one, and whether it names the job. */
export type LaterDamage = 'none' | 'names-it' | 'anonymous';

function isoOfNs(ns: bigint | null): string | null {
  return ns === null ? null : new Date(Number(ns / 1_000_000n)).toISOString();
}

/** A job recorded starting or running: lost, with the reason that is true. */
export function markLost(record: JobRecord, running: boolean, later: LaterDamage, scan: LogScan | null, stats: CgroupStats | null): void {
  let why: string;
  if (running) why = 'the daemon stopped while the job was running; its processes were killed';
  else if (later === 'names-it') why = 'its last record was damaged: how it ended is unknown (its processes had exited; its log is kept)';
  else if (later === 'anonymous') why = 'how it ended is unknown: the daemon stopped before recording it, or that record was damaged (its processes had exited)';
  else why = 'the daemon stopped before recording how the job ended (its processes had already exited)';
  record.state = 'lost';
  record.outcome = lostOutcome(why);
  if (running) record.stats = stats;
  // Killed now: it ended now. Otherwise it ended after its last output, when exactly is not known.
  record.finishedAt = running ? new Date().toISOString() : (isoOfNs(scan?.lastTimeNs ?? null) ?? record.startedAt ?? record.createdAt);
  if (scan !== null) record.log = Object.assign({}, record.log, { bytes: scan.validBytes });
}

/** The log is gone: what it held is counted as dropped, and readers find an empty log. */
export function recordLogMissing(record: JobRecord): void {
  const lost = Math.max(0, record.log.bytes - FILE_HEADER_SIZE);
  record.log = Object.assign({}, record.log, { bytes: FILE_HEADER_SIZE, droppedBytes: record.log.droppedBytes + lost });
}

const UNKNOWN_SPEC: RecordedSpec = { command: '', args: [], argsOmitted: 0, env: null, cwd: '', limits: {}, owner: '', user: null };

/**
 * A job known only from its log (and its spec file, if it had one): what they say, and nothing
 * else. With no spec file its owner is unknown (''), so only admins see it.
 */
export function rebuiltRecord(id: string, scan: LogScan | null, spec: RecordedSpec | null, running: boolean, stats: CgroupStats | null, fileTime: string): JobRecord {
  const first = isoOfNs(scan?.firstTimeNs ?? null) ?? fileTime;
  const unknown = spec === null ? 'its command, owner and exit status are unknown' : 'its exit status is unknown';
  const readable = scan === null ? '; its log could not be read' : '';
  const killedNow = running ? '; its processes were still running and were killed' : '';
  return {
    version: 2,
    id,
    spec: spec ?? UNKNOWN_SPEC,
    specFile: spec !== null,
    state: 'lost',
    outcome: lostOutcome(`its record was damaged or missing; rebuilt from its log (${unknown}${readable}${killedNow})`),
    pid: null,
    createdAt: first,
    startedAt: first,
    finishedAt: running ? new Date().toISOString() : (isoOfNs(scan?.lastTimeNs ?? null) ?? fileTime),
    log: {
      bytes: scan?.validBytes ?? FILE_HEADER_SIZE,
      droppedBytes: scan?.droppedBytes ?? 0,
      truncated: scan?.truncated ?? false,
      writeError: scan?.writeError ?? null,
    },
    stats: running ? stats : null,
    rebuilt: unknown,
  };
}
