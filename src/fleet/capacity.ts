// What a daemon has room for: a number of jobs, and optionally memory and CPUs, counted from the
// limits in force of every job it runs (pool jobs and its own alike) plus the claims being started.
// A job without a memory or CPU limit asks for the daemon's default (or nothing, without one).
import type { Limits, Worker } from '../worker';

export interface CapacityConfig {
  jobs: number;
  memoryBytes?: number;
  cpu?: number;
}

export interface Ask {
  memoryBytes: number;
  cpu: number;
}

export class CapacityGauge {
  #reserved: Ask[] = [];

  constructor(
    private readonly worker: Worker,
    readonly config: CapacityConfig,
    private readonly defaults: { memoryBytes?: number; cpu?: number },
  ) {}

  askOf(limits: Limits): Ask {
    return { memoryBytes: limits.memoryBytes ?? this.defaults.memoryBytes ?? 0, cpu: limits.cpu ?? this.defaults.cpu ?? 0 };
  }

  /** Room for one more job of any size? (Fetch nothing while there is none.) */
  hasSlot(): boolean {
    return this.worker.runningJobs + this.#reserved.length < this.config.jobs;
  }

  /** Could this job run here when the daemon is idle? */
  everFits(ask: Ask): boolean {
    return (this.config.memoryBytes === undefined || ask.memoryBytes <= this.config.memoryBytes) && (this.config.cpu === undefined || ask.cpu <= this.config.cpu + 1e-9);
  }

  fitsNow(ask: Ask): boolean {
    if (!this.hasSlot()) return false;
    const used = this.#used();
    return (
      (this.config.memoryBytes === undefined || used.memoryBytes + ask.memoryBytes <= this.config.memoryBytes) &&
      (this.config.cpu === undefined || used.cpu + ask.cpu <= this.config.cpu + 1e-9)
    );
  }

  /** Holds room for a claim until its job runs (or fails to start); returns the release. */
  reserve(ask: Ask): () => void {
    this.#reserved.push(ask);
    return () => {
      const at = this.#reserved.indexOf(ask);
      if (at >= 0) this.#reserved.splice(at, 1);
    };
  }

  #used(): Ask {
    const used: Ask = { memoryBytes: 0, cpu: 0 };
    for (const ask of this.#reserved) {
      used.memoryBytes += ask.memoryBytes;
      used.cpu += ask.cpu;
    }
    if (this.config.memoryBytes === undefined && this.config.cpu === undefined) return used;
    for (const job of this.worker.list({ states: ['starting', 'running'] })) {
      const ask = this.askOf(job.status().limits);
      used.memoryBytes += ask.memoryBytes;
      used.cpu += ask.cpu;
    }
    return used;
  }
}
