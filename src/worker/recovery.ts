// After a crash or restart: jobs recorded as starting/running cannot be captured any more (the pipe
// readers died with the old daemon), so they become `lost`: their cgroups are killed and removed,
// their logs cut at the last complete record and kept. Cgroups and logs that no record owns are
// orphans and go too. Finished jobs keep their history.
import { rm } from 'node:fs/promises';

import type { CgroupDriver, CgroupStats, JobCgroupName } from '../cgroup';
import { repairLog } from '../logs/repair';
import { isFinal, lostOutcome } from './job-state';
import type { JobRecord, StateStore } from './state-store';

export interface RecoveryReport {
  records: JobRecord[];
  lost: string[];
  orphanCgroupsRemoved: string[];
  /** Logs of starts that crashed before they were recorded (their callers never got an id). */
  incompleteStartsRemoved: string[];
  /** Journal lines that failed their check (a torn last line after a crash, or damage). */
  damagedJournalLines: number;
}

/**
 * Works out the state after a crash or restart; the caller persists `records` (it rewrites the
 * journal with them). Touches cgroups and log files, never the journal.
 */
export async function recover(
  store: StateStore,
  driver: CgroupDriver,
  warn: (message: string, details: Record<string, unknown>) => void,
): Promise<RecoveryReport> {
  const { records, damagedLines, orphanLogs } = await store.readAll();
  const report: RecoveryReport = { records, lost: [], orphanCgroupsRemoved: [], incompleteStartsRemoved: [], damagedJournalLines: damagedLines };
  if (damagedLines > 0) warn('journal lines failed their check and were skipped (a crash mid-write?)', { lines: damagedLines });

  for (const record of records) {
    if (isFinal(record.state)) continue;
    report.lost.push(record.id);
    record.stats = await killAndRemove(driver, { id: record.id, slice: driver.sliceOf(record.spec.owner) }, warn);
    record.state = 'lost';
    record.outcome = lostOutcome('the daemon stopped while the job was running; its processes were killed');
    record.finishedAt = new Date().toISOString();
    try {
      const scan = await repairLog(store.logPath(record.id));
      record.log = { ...record.log, bytes: scan.validBytes };
    } catch (error) {
      warn('log of a lost job could not be read', { job: record.id, error: String(error) });
    }
  }

  // Their cgroups (in a slice no record names) go with the sweep below.
  for (const id of orphanLogs) {
    await rm(store.logPath(id), { force: true });
    report.incompleteStartsRemoved.push(id);
  }

  // Nothing runs yet, so every job cgroup still present is an orphan: a lost job's whose removal
  // failed above, a finished job's that would not go away last time, or one no record knows.
  for (const name of await driver.listJobs()) {
    await killAndRemove(driver, name, warn);
    report.orphanCgroupsRemoved.push(name.id);
  }
  // And so every slice is idle: made again, with today's limits, by the next job that needs one.
  await driver.removeIdleSlices().catch((error: unknown) => warn('identity slices not removed', { error: String(error) }));
  return report;
}

async function killAndRemove(
  driver: CgroupDriver,
  name: JobCgroupName,
  warn: (message: string, details: Record<string, unknown>) => void,
): Promise<CgroupStats | null> {
  const id = name.id;
  const cgroup = await driver.open(name);
  if (cgroup === undefined) return null;
  let stats: CgroupStats | null = null;
  try {
    await cgroup.kill();
    stats = await cgroup.stats();
    await cgroup.destroy();
  } catch (error) {
    warn('cgroup of a lost job not removed', { job: id, cgroup: cgroup.path, error: String(error) });
  }
  return stats;
}
