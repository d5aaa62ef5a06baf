// After a crash or restart: jobs recorded as starting/running cannot be captured any more (the pipe
// readers died with the old daemon), so they become `lost`: their cgroups are killed and removed,
// their logs cut at the last complete record and kept. Cgroups that no record owns are orphans and
// go the same way. Finished jobs keep their history.
import { existsSync } from 'node:fs';

import type { CgroupDriver, CgroupStats } from '../cgroup/types';
import { repairLog } from '../logs/repair';
import { isFinal, lostOutcome } from './job-state';
import type { JobRecord, StateStore } from './state-store';

export interface RecoveryReport {
  records: JobRecord[];
  lost: string[];
  orphanCgroupsRemoved: string[];
  incompleteStartsRemoved: string[];
  unreadable: { id: string; error: string }[];
}

export async function recover(
  store: StateStore,
  driver: CgroupDriver,
  warn: (message: string, details: Record<string, unknown>) => void,
): Promise<RecoveryReport> {
  const report: RecoveryReport = { records: [], lost: [], orphanCgroupsRemoved: [], incompleteStartsRemoved: [], unreadable: [] };
  const { records, unreadable } = await store.readAll();

  for (const record of records) {
    if (!isFinal(record.state)) {
      report.lost.push(record.id);
      record.stats = await killAndRemove(driver, record.id, warn);
      record.state = 'lost';
      record.outcome = lostOutcome('the daemon stopped while the job was running; its processes were killed');
      record.finishedAt = new Date().toISOString();
      try {
        const scan = await repairLog(store.logPath(record.id));
        record.log = { ...record.log, bytes: scan.validBytes };
      } catch (error) {
        warn('log of a lost job could not be read', { job: record.id, error: String(error) });
      }
      await store.write(record, true);
    }
    report.records.push(record);
  }

  for (const entry of unreadable) {
    if (!existsSync(`${store.jobDir(entry.id)}/job.json`)) {
      // Crashed between creating the directory and recording the start: the caller never got this
      // job's id, so there is nothing to keep.
      await killAndRemove(driver, entry.id, warn);
      await store.remove(entry.id);
      report.incompleteStartsRemoved.push(entry.id);
    } else {
      warn('job record unreadable; left in place', { job: entry.id, error: entry.error });
      report.unreadable.push(entry);
    }
  }

  // Nothing runs yet, so every job cgroup still present is an orphan: a lost job's whose removal
  // failed above, a finished job's that would not go away last time, or one no record knows.
  for (const id of await driver.listJobIds()) {
    await killAndRemove(driver, id, warn);
    report.orphanCgroupsRemoved.push(id);
  }
  return report;
}

async function killAndRemove(
  driver: CgroupDriver,
  id: string,
  warn: (message: string, details: Record<string, unknown>) => void,
): Promise<CgroupStats | null> {
  const cgroup = await driver.open(id);
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
