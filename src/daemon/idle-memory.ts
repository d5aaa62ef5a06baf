// Gives memory grown during a burst back to the system once the daemon is quiet again.
//
// Why: after a burst (thousands of jobs, a big ListJobs, many streams) the daemon keeps what it
// grew. V8 keeps its heap — measured after 20,000 jobs: 128.7 MiB of heap for 25.1 MiB of live
// objects, RSS 210 MiB against 93 MiB before, still so after 90 s of light traffic — because it
// shrinks a heap only in a full GC, and a quiet daemon allocates too little to ever run one. And
// glibc keeps freed buffers (stream messages, TLS records) in its arenas until malloc_trim.
// (docs/reliability.md: load-jobs, vanishing-clients.) So every CHECK_INTERVAL_MS, if the main
// thread was nearly idle over the interval (event loop utilization below IDLE_UTILIZATION) and
// releaseReason() finds something worth giving back, run one full GC and, once V8 has freed the
// dead Buffers, trim the C heap — a few milliseconds on memory that is mostly garbage. A busy
// daemon is never interrupted; memory that stays because it is live is collected once, then its
// figures become the baseline, so an idle daemon is not collected again and again for nothing.
//
// Node exposes no GC call without --expose-gc on the command line, which a systemd unit or
// `npm start` should not need; the flag can be set at run time and `gc` read from a fresh context
// (what the flag adds to every new context).
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { runPeriodically, type PeriodicTask } from '../periodic';
import { trimNativeHeap } from '../worker';

export const CHECK_INTERVAL_MS = 30_000;
/** Growth below this is left alone: not worth a full GC. */
export const MIN_GROWTH_BYTES = 64 << 20;
/** From the full GC to trimming the C heap (see check()). */
export const TRIM_DELAY_MS = 1000;
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

export interface MemoryFigures {
  rss: number;
  heapTotal: number;
  heapUsed: number;
}

export interface IdleMemoryOptions {
  intervalMs?: number;
  minGrowthBytes?: number;
  idleUtilization?: number;
  /** Told the figures before and after each release, and why it ran (see releaseReason). */
  onRelease?: (before: MemoryFigures, after: MemoryFigures, reason: string) => void;
  /**
   * Told when a check or a trim failed (process.memoryUsage() throws EMFILE when the fd table is
   * full): the daemon logs it and goes on; never thrown out of a timer (src/periodic.ts).
   */
  onError?: (name: string, error: unknown, failures: number) => void;
}

/**
 * Why memory should be released now, given the figures right after the last release (or at the
 * start); null if not worth a full GC:
 * - 'heap reserve': V8 has collected but kept the pages (much more committed than live, and more
 *   than it kept right after the last release);
 * - 'heap growth': the heap grew since the last release (live or not: only a GC can tell);
 * - 'rss growth': the process grew outside what the heap explains (C heap: Buffers, TLS).
 */
export function releaseReason(now: MemoryFigures, last: MemoryFigures, minGrowthBytes = MIN_GROWTH_BYTES): string | null {
  const reserve = now.heapTotal - now.heapUsed;
  if (reserve >= Math.max(minGrowthBytes, 2 * (last.heapTotal - last.heapUsed))) return 'heap reserve';
  if (now.heapTotal >= last.heapTotal + minGrowthBytes) return 'heap growth';
  if (now.rss >= last.rss + minGrowthBytes) return 'rss growth';
  return null;
}

function figures(): MemoryFigures {
  const { rss, heapTotal, heapUsed } = process.memoryUsage();
  return { rss, heapTotal, heapUsed };
}

/** Checks every interval and releases memory grown during a burst once the daemon is idle; stop() ends it. */
export class IdleMemoryReleaser {
  #timer: PeriodicTask;
  #onError: NonNullable<IdleMemoryOptions['onError']>;
  #minGrowthBytes: number;
  #idleUtilization: number;
  #onRelease: IdleMemoryOptions['onRelease'];
  #baseline = figures();
  #lastUtilization = performance.eventLoopUtilization();
  #trimTimer: NodeJS.Timeout | undefined;

  constructor(options: IdleMemoryOptions = {}) {
    this.#minGrowthBytes = options.minGrowthBytes ?? MIN_GROWTH_BYTES;
    this.#idleUtilization = options.idleUtilization ?? IDLE_UTILIZATION;
    this.#onRelease = options.onRelease;
    this.#onError = options.onError ?? (() => undefined);
    this.#timer = runPeriodically({ name: 'idle memory release', intervalMs: options.intervalMs ?? CHECK_INTERVAL_MS, task: () => this.check(), onError: this.#onError });
  }

  /**
   * One check, of the time since the previous one; returns true if it started a release (the GC
   * at once, the trim TRIM_DELAY_MS later, then onRelease).
   */
  check(): boolean {
    const now = performance.eventLoopUtilization();
    const interval = performance.eventLoopUtilization(now, this.#lastUtilization);
    this.#lastUtilization = now;
    // Before the event loop first runs there is no measurement (all zeros): not idle.
    const idle = interval.idle + interval.active > 0 && interval.utilization < this.#idleUtilization;
    if (!idle) return false;
    if (this.#trimTimer !== undefined) return false; // a release is under way
    const before = figures();
    const reason = releaseReason(before, this.#baseline, this.#minGrowthBytes);
    if (reason === null) return false;
    fullGarbageCollection();
    // V8 frees the memory of dead ArrayBuffers (Buffers) after the GC, on a background sweeper;
    // trimming at once would find it still in use.
    this.#trimTimer = setTimeout(() => {
      this.#trimTimer = undefined;
      try {
        trimNativeHeap();
        const after = figures();
        this.#baseline = after;
        this.#onRelease?.(before, after, reason);
      } catch (error) {
        this.#onError('idle memory trim', error, 1);
      }
    }, TRIM_DELAY_MS); // not unref'd: a release once started finishes (stop() cancels it)
    return true;
  }

  stop(): void {
    this.#timer.stop();
    clearTimeout(this.#trimTimer);
  }
}
