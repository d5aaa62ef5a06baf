// Gives V8's grown heap back to the system once the daemon is quiet again.
//
// Why: after a burst (thousands of jobs, a big ListJobs, many streams) V8 keeps the heap it grew —
// measured after 20,000 jobs: 128.7 MiB of heap for 25.1 MiB of live objects, RSS 210 MiB against
// 93 MiB before, still so after 90 s of light traffic (docs/reliability.md, load-jobs). V8 shrinks
// a heap only in a full GC, and a quiet daemon allocates too little to ever run one. So every
// CHECK_INTERVAL_MS: if the main thread was nearly idle over the interval (event loop utilization
// below IDLE_UTILIZATION) and the heap has grown by MIN_GROWTH_BYTES since our last collection
// (or the start), run one full GC — a few milliseconds on a heap that is mostly garbage. A busy
// daemon is never interrupted, and a heap that stays large because it is live is collected once,
// then becomes the new baseline.
//
// Node exposes no GC call without --expose-gc on the command line, which a systemd unit or
// `npm start` should not need; the flag can be set at run time and `gc` read from a fresh context
// (what the flag adds to every new context).
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const CHECK_INTERVAL_MS = 30_000;
/** Growth of the heap below this is left alone: not worth a full GC. */
export const MIN_GROWTH_BYTES = 64 << 20;
/** The main thread counts as idle below this share of busy time over an interval. */
export const IDLE_UTILIZATION = 0.05;

let fullGc: (() => void) | undefined;

/** V8's full garbage collection, made available once (see the top of this file). */
export function fullGarbageCollection(): void {
  if (fullGc === undefined) {
    setFlagsFromString('--expose-gc');
    fullGc = runInNewContext('gc') as () => void;
  }
  fullGc();
}

export interface HeapFigures {
  heapTotal: number;
  heapUsed: number;
}

export interface HeapReserveOptions {
  intervalMs?: number;
  minGrowthBytes?: number;
  idleUtilization?: number;
  /** Told the heap before and after each release. */
  onRelease?: (before: HeapFigures, after: HeapFigures) => void;
}

/** Checks every interval and gives back a heap grown during a burst once the daemon is idle; stop() ends it. */
export class HeapReserveReleaser {
  #timer: NodeJS.Timeout;
  #minGrowthBytes: number;
  #idleUtilization: number;
  #onRelease: HeapReserveOptions['onRelease'];
  #baselineTotal = process.memoryUsage().heapTotal;
  #lastUtilization = performance.eventLoopUtilization();

  constructor(options: HeapReserveOptions = {}) {
    this.#minGrowthBytes = options.minGrowthBytes ?? MIN_GROWTH_BYTES;
    this.#idleUtilization = options.idleUtilization ?? IDLE_UTILIZATION;
    this.#onRelease = options.onRelease;
    this.#timer = setInterval(() => this.check(), options.intervalMs ?? CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  /** One check, of the time since the previous one; returns true if it ran a full GC. */
  check(): boolean {
    const now = performance.eventLoopUtilization();
    const interval = performance.eventLoopUtilization(now, this.#lastUtilization);
    // Before the event loop first runs there is no measurement (all zeros): not idle.
    const idle = interval.idle + interval.active > 0 && interval.utilization < this.#idleUtilization;
    this.#lastUtilization = now;
    const before = process.memoryUsage();
    if (!idle || before.heapTotal < this.#baselineTotal + this.#minGrowthBytes) return false;
    fullGarbageCollection();
    const after = process.memoryUsage();
    this.#baselineTotal = after.heapTotal;
    this.#onRelease?.({ heapTotal: before.heapTotal, heapUsed: before.heapUsed }, { heapTotal: after.heapTotal, heapUsed: after.heapUsed });
    return true;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
