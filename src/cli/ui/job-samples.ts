// One job's resource use over time, for its charts: each reading (GetJob while it runs, the final
// stats once it ended) becomes a sample with the rates since the previous one, as `job-cli top`
// computes them. Bounded: when full, every other sample is dropped, so a long job keeps its whole
// life at a coarser grain and its recent past at the sampling interval.
import type { JobView } from '../../client';
import { toJobReport } from '../job-cli/job-report';
import { topRows, type Reading } from '../job-cli/top';
import type { UiRates, UiSample } from './protocol';

export const MAX_SAMPLES = 1200;

/** Rates between two readings of a job (null where there is no earlier one). */
export function ratesOf(job: JobView, atMs: number, previous: Reading | undefined): { rates: UiRates; reading: Reading } {
  const reading: Reading = { job: toJobReport(job), atMs };
  const row = topRows(previous === undefined ? new Map() : new Map([[job.id, previous]]), [reading])[0]!;
  return {
    reading,
    rates: {
      cpuPercent: row.cpuPercent,
      memoryBytes: row.memoryBytes,
      memoryPeakBytes: job.stats?.memoryPeakBytes ?? null,
      pids: row.pids,
      ioReadBytesPerSecond: row.ioReadBytesPerSecond,
      ioWriteBytesPerSecond: row.ioWriteBytesPerSecond,
    },
  };
}

export class JobSamples {
  #samples: UiSample[] = [];
  #last: Reading | undefined;
  #final = false;

  get samples(): readonly UiSample[] {
    return this.#samples;
  }

  get final(): boolean {
    return this.#final;
  }

  /** A live reading taken at `atMs` (ms since the epoch). */
  addLive(job: JobView, atMs: number): UiSample | undefined {
    if (this.#final || job.stats === null) return undefined;
    return this.#add(job, atMs);
  }

  /** The job's final stats, at its finish time; once. */
  addFinal(job: JobView): UiSample | undefined {
    if (this.#final || job.stats === null || job.finishedAt === null) return undefined;
    this.#final = true;
    return this.#add(job, job.finishedAt.getTime());
  }

  #add(job: JobView, atMs: number): UiSample {
    const { rates, reading } = ratesOf(job, atMs, this.#last);
    this.#last = reading;
    const sample = { time: atMs, ...rates };
    if (this.#samples.length >= MAX_SAMPLES) this.#samples = this.#samples.filter((_, i) => i % 2 === 1);
    this.#samples.push(sample);
    return sample;
  }
}
