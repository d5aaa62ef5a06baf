// The state directory: <stateDir>/jobs/<id>/{job.json,output.log}. job.json is replaced atomically
// (write a temp file, fsync, rename), so a crash leaves either the old or the new record, never half.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import * as path from 'node:path';

import type { CgroupStats } from '../cgroup/types';
import { systemError } from '../errors';
import type { ResolvedJobSpec } from './job-spec';
import type { JobOutcome, JobState } from './job-state';

export interface JobLogInfo {
  bytes: number;
  droppedBytes: number;
  truncated: boolean;
  writeError: string | null;
}

/** What job.json holds. */
export interface JobRecord {
  version: 1;
  id: string;
  spec: ResolvedJobSpec;
  state: JobState;
  outcome: JobOutcome | null;
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  log: JobLogInfo;
  /** Final resource use, taken before the cgroup was removed. */
  stats: CgroupStats | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class StateStore {
  readonly jobsDir: string;
  // Writes of one job's record are chained so they land in the order they were made.
  #writes = new Map<string, Promise<void>>();

  constructor(readonly stateDir: string) {
    this.jobsDir = path.join(stateDir, 'jobs');
  }

  async init(): Promise<void> {
    try {
      // 0700: job records hold the jobs' environments, which may carry secrets.
      await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
      await mkdir(this.jobsDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw systemError('create state directory', this.jobsDir, error);
    }
  }

  jobDir(id: string): string {
    return path.join(this.jobsDir, id);
  }

  logPath(id: string): string {
    return path.join(this.jobsDir, id, 'output.log');
  }

  async createJobDir(id: string): Promise<void> {
    try {
      await mkdir(this.jobDir(id), { mode: 0o700 });
    } catch (error) {
      throw systemError('create job directory', this.jobDir(id), error);
    }
  }

  /** Replaces job.json. `durable` also fsyncs before the rename (creation and final states). */
  write(record: JobRecord, durable: boolean): Promise<void> {
    const previous = this.#writes.get(record.id) ?? Promise.resolve();
    const text = JSON.stringify(record);
    const next = previous.then(() => this.#writeNow(record.id, text, durable));
    const tracked = next.finally(() => {
      if (this.#writes.get(record.id) === tracked) this.#writes.delete(record.id);
    });
    this.#writes.set(record.id, tracked);
    return next;
  }

  async #writeNow(id: string, text: string, durable: boolean): Promise<void> {
    const target = path.join(this.jobDir(id), 'job.json');
    const temp = `${target}.tmp`;
    try {
      const file = await open(temp, 'w', 0o600);
      try {
        await file.writeFile(text);
        if (durable) await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, target);
    } catch (error) {
      throw systemError('write job record', target, error);
    }
  }

  /** Every job record; directories without a readable record are reported separately. */
  async readAll(): Promise<{ records: JobRecord[]; unreadable: { id: string; error: string }[] }> {
    const records: JobRecord[] = [];
    const unreadable: { id: string; error: string }[] = [];
    for (const id of await readdir(this.jobsDir)) {
      if (!UUID.test(id)) continue;
      try {
        const record = JSON.parse(await readFile(path.join(this.jobDir(id), 'job.json'), 'utf8')) as JobRecord;
        if (record.version !== 1 || record.id !== id) throw new Error('not a version 1 record of this job');
        records.push(record);
      } catch (error) {
        unreadable.push({ id, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return { records, unreadable };
  }

  async remove(id: string): Promise<void> {
    await this.#writes.get(id)?.catch(() => undefined);
    try {
      await rm(this.jobDir(id), { recursive: true, force: true });
    } catch (error) {
      throw systemError('remove job directory', this.jobDir(id), error);
    }
  }
}
