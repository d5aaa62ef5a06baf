// After a crash or restart: jobs recorded as starting/running cannot be captured any more (the pipe
// readers died with the old daemon), so they become `lost`: their cgroups are killed and removed,
// their logs cut at the last complete record and kept. Finished jobs keep their history.
//
// Damage is reported, never amplified. A journal line that fails its check is copied aside (see
// journal-reader.ts) and the job's history is rebuilt from what is intact rather than invented:
// a log with output but no intact record becomes a job again (state lost, reason "its record was
// damaged or missing; rebuilt from its log"), with what the log says (its id, when its output
// began and ended, what was dropped) and, for a big spec, what its spec file says; a job whose last
// intact record is final stays as it was; a job recorded running whose processes are gone is not
// said to have been killed. The only logs removed are those of removals the journal recorded and
// those holding no output at all (a start that crashed before it was recorded). One warning names
// everything that was lost or rebuilt.
import { lstat } from 'node:fs/promises';

import type { CgroupDriver, CgroupStats, JobCgroupName } from '../cgroup';
import { repairLog, type LogScan } from '../logs/repair';
import { recordSpec, type JobRecord } from './job-record';
import { isFinal } from './job-state';
import type { JournalDamage } from './journal-reader';
import { markLost, rebuiltRecord, recordLogMissing, type LaterDamage } from './recovered-records';
import { removeIfPresent } from './state-files';
import type { StateContents, StateStore } from './state-store';

type Warn = (message: string, details: Record<string, unknown>) => void;

/** What was damaged and what recovery made of it; null in a RecoveryReport when nothing was. */
export interface StateDamage {
  /** Journal lines that failed their check, where they were copied (or why they could not be). */
  journalLines: number;
  copiedTo: string | null;
  copyError: string | null;
  /** Jobs whose record was damaged or missing, rebuilt from their log (state lost). */
  rebuiltFromLogs: string[];
  /** Jobs recorded running whose newer record was damaged: how they ended is unknown (state lost). */
  finalStateUnknown: string[];
  /** Jobs whose log was missing: their recorded output is lost (counted in log.droppedBytes). */
  logsMissing: string[];
  /** Links found where a log or spare should be: removed, never followed (their targets untouched). */
  linksRemoved: string[];
  /** Jobs named only in damaged lines, with no log left: nothing of them could be recovered. */
  notRecovered: string[];
}

export interface RecoveryReport {
  records: JobRecord[];
  /** Jobs that were starting or running when the daemon stopped: now lost. */
  lost: string[];
  orphanCgroupsRemoved: string[];
  /** Logs without output and without a record: starts that crashed before they were recorded. */
  incompleteStartsRemoved: string[];
  /** Journal lines of the previous format read (and their big specs moved to spec files). */
  migratedRecords: number;
  damage: StateDamage | null;
}

/**
 * Works out the state after a crash or restart; the caller persists `records` (it rewrites the
 * journal with them). Touches cgroups, log and spec files, never the journal.
 */
export async function recover(store: StateStore, driver: CgroupDriver, warn: Warn): Promise<RecoveryReport> {
  const contents = await store.readAll();
  const { journal } = contents;
  const damage: StateDamage = {
    journalLines: journal.damage.count,
    copiedTo: journal.damage.copiedTo,
    copyError: journal.damage.copyError,
    rebuiltFromLogs: [],
    finalStateUnknown: [],
    logsMissing: [],
    linksRemoved: [...contents.refusedSpares],
    notRecovered: [],
  };
  const report: RecoveryReport = { records: [], lost: [], orphanCgroupsRemoved: [], incompleteStartsRemoved: [], migratedRecords: journal.migrated, damage: null };
  const records = journal.records;
  const killed = new Map<string, CgroupStats | null>();
  // Where each job's cgroup is (its slice), found on disk: an orphan log names no owner.
  const cgroupsOf = new Map<string, JobCgroupName[]>();
  for (const name of await driver.listJobs()) cgroupsOf.set(name.id, [...(cgroupsOf.get(name.id) ?? []), name]);
  /** Kills and removes the job's cgroup; true if a process of it was still running. */
  const killIfRunning = async (id: string): Promise<boolean> => {
    let populated = false;
    for (const name of cgroupsOf.get(id) ?? []) {
      const result = await killAndRemove(driver, name, warn);
      if (result.populated) killed.set(id, result.stats);
      populated ||= result.populated;
    }
    return populated;
  };

  // Links where logs should be: never ours, never followed. The name goes; a record stays, logless.
  for (const [id, kind] of contents.logs) {
    if (kind === 'file') continue;
    if (kind === 'link') await removeIfPresent(store.logPath(id), 'remove link').then(() => damage.linksRemoved.push(store.logPath(id)), () => undefined);
    contents.logs.delete(id);
  }

  for (const record of records.values()) {
    const hasLog = contents.logs.has(record.id);
    if (!isFinal(record.state)) {
      const running = await killIfRunning(record.id);
      const scan = hasLog ? await scanOrWarn(store.logPath(record.id), record.id, warn) : null;
      const later = laterDamage(journal.damage, record.id, journal.lastOffsets.get(record.id) ?? 0);
      report.lost.push(record.id);
      markLost(record, running, later, scan, killed.get(record.id) ?? null);
      if (!running && later !== 'none') damage.finalStateUnknown.push(record.id);
    }
    if (!hasLog) {
      damage.logsMissing.push(record.id);
      recordLogMissing(record);
    }
  }

  // Logs no intact record owns. Without output, and with no sign that records were lost, one is a
  // start that crashed before it was recorded (its caller never got the id): nothing to keep. With
  // output, or when records were lost (damaged lines, other such logs with output), it is a job.
  const namedInDamage = new Set(journal.damage.lines.flatMap((line) => line.ids));
  const orphans: { id: string; running: boolean; scan: LogScan | null }[] = [];
  for (const id of contents.logs.keys()) {
    if (records.has(id)) continue;
    if (journal.removed.has(id)) {
      await discardOrWarn(store, id, warn); // its removal was recorded; its log outlived it (a crash)
      continue;
    }
    orphans.push({ id, running: await killIfRunning(id), scan: await scanOrWarn(store.logPath(id), id, warn) });
  }
  const recordsLost = journal.damage.count > 0 || orphans.some((orphan) => orphan.scan?.records !== 0);
  for (const { id, running, scan } of orphans) {
    if (scan !== null && scan.records === 0 && !running && !recordsLost && !namedInDamage.has(id)) {
      await discardOrWarn(store, id, warn);
      report.incompleteStartsRemoved.push(id);
      continue;
    }
    const spec = contents.specFiles.has(id) ? await store.readSpec(id) : undefined;
    const record = rebuiltRecord(id, scan, spec === undefined ? null : recordSpec(spec).spec, running, killed.get(id) ?? null, await fileTime(store.logPath(id)));
    if (running) report.lost.push(id);
    records.set(id, record);
    damage.rebuiltFromLogs.push(id);
  }

  // Spec files of jobs that are gone (removed, or never recorded).
  for (const id of contents.specFiles) {
    if (!records.has(id)) await removeIfPresent(store.specPath(id), 'remove job spec file').catch((error: unknown) => warn('could not remove a spec file', { job: id, error: String(error) }));
  }
  damage.notRecovered = [...namedInDamage].filter((id) => !records.has(id) && !contents.logs.has(id));

  // Nothing runs yet, so every job cgroup still present is an orphan: a lost job's whose removal
  // failed above, a finished job's that would not go away last time, or one no record knows.
  for (const name of await driver.listJobs()) {
    await killAndRemove(driver, name, warn);
    report.orphanCgroupsRemoved.push(name.id);
  }
  // And so every slice is idle: made again, with today's limits, by the next job that needs one.
  await driver.removeIdleSlices().catch((error: unknown) => warn('identity slices not removed', { error: String(error) }));

  report.records = [...records.values()];
  const damaged = damage.journalLines + damage.rebuiltFromLogs.length + damage.finalStateUnknown.length + damage.logsMissing.length + damage.linksRemoved.length > 0;
  if (damaged) {
    report.damage = damage;
    warn(damageSummary(damage, journal.damage), { ...damage });
  }
  return report;
}

/** Whether a damaged line came after a job's last intact one, and whether it names the job. */
function laterDamage(damage: JournalDamage, id: string, lastOffset: number): LaterDamage {
  let found: LaterDamage = 'none';
  for (const line of damage.lines) {
    if (line.offset <= lastOffset) continue;
    if (line.ids.includes(id)) return 'names-it';
    found = 'anonymous';
  }
  return found;
}

function damageSummary(damage: StateDamage, journal: JournalDamage): string {
  const parts: string[] = [];
  if (damage.journalLines > 0) {
    const where = damage.copiedTo !== null ? `copied to ${damage.copiedTo}` : `NOT copied: ${damage.copyError ?? 'unknown error'}`;
    parts.push(`${damage.journalLines} journal line(s) failed their check${journal.tornTail ? ' (the last one torn)' : ''} and were ${where}`);
  }
  if (damage.rebuiltFromLogs.length > 0) parts.push(`${damage.rebuiltFromLogs.length} job(s) rebuilt from their logs as lost (records damaged or missing): ${damage.rebuiltFromLogs.join(', ')}`);
  if (damage.finalStateUnknown.length > 0) parts.push(`${damage.finalStateUnknown.length} job(s) whose final record was lost (now lost, exit status unknown): ${damage.finalStateUnknown.join(', ')}`);
  if (damage.logsMissing.length > 0) parts.push(`${damage.logsMissing.length} job(s) whose log was missing (output lost): ${damage.logsMissing.join(', ')}`);
  if (damage.linksRemoved.length > 0) parts.push(`${damage.linksRemoved.length} symbolic link(s) in the state directory removed, not followed: ${damage.linksRemoved.join(', ')}`);
  if (damage.notRecovered.length > 0) parts.push(`job(s) named in damaged lines with nothing left to recover: ${damage.notRecovered.join(', ')}`);
  return `state directory damaged; everything intact was kept: ${parts.join('; ')}`;
}

async function scanOrWarn(log: string, id: string, warn: Warn): Promise<LogScan | null> {
  try {
    return await repairLog(log);
  } catch (error) {
    warn('a job log could not be read', { job: id, log, error: String(error) });
    return null;
  }
}

async function discardOrWarn(store: StateStore, id: string, warn: Warn): Promise<void> {
  try {
    await store.spareLogs.discard(store.logPath(id));
    await removeIfPresent(store.specPath(id), 'remove job spec file');
  } catch (error) {
    warn('could not remove a log no job owns', { job: id, error: String(error) });
  }
}

async function fileTime(file: string): Promise<string> {
  try {
    return (await lstat(file)).mtime.toISOString();
  } catch {
    return new Date().toISOString();
  }
}

/** Kills what is left in the job's cgroup and removes it; says whether a process was left. */
async function killAndRemove(driver: CgroupDriver, name: JobCgroupName, warn: Warn): Promise<{ populated: boolean; stats: CgroupStats | null }> {
  const id = name.id;
  const cgroup = await driver.open(name);
  if (cgroup === undefined) return { populated: false, stats: null };
  let stats: CgroupStats | null = null;
  let populated = true;
  try {
    populated = !(await cgroup.waitEmpty(0));
    await cgroup.kill();
    stats = await cgroup.stats();
    await cgroup.destroy();
  } catch (error) {
    warn('cgroup of a lost job not removed', { job: id, cgroup: cgroup.path, error: String(error) });
  }
  return { populated, stats };
}

export type { StateContents };
