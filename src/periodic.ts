// Periodic tasks that can never take the process down. A task on a timer runs outside any caller
// that could catch its error, so one exception (process.memoryUsage() throws EMFILE when the fd
// table is full) would be uncaught and kill the daemon. Every periodic task runs through here: a
// throw or a rejection is reported, at most once per REPORT_INTERVAL_MS with the count of
// failures since, and the task runs again at its next tick.

/** Failures of one task are reported at most this often (the first at once). */
export const REPORT_INTERVAL_MS = 60_000;

export interface PeriodicTaskOptions {
  /** Named in failure reports. */
  name: string;
  intervalMs: number;
  task: () => unknown;
  /** Told about a failure: the error, and how many failures it stands for (the ones not yet reported). */
  onError: (name: string, error: unknown, failures: number) => void;
  /** Keep the process alive while scheduled (default false: unref'd). */
  ref?: boolean;
}

export interface PeriodicTask {
  stop(): void;
}

/** Runs `task` every `intervalMs`, catching and reporting whatever it throws or rejects with. */
export function runPeriodically(options: PeriodicTaskOptions): PeriodicTask {
  let unreported = 0;
  let lastReport = -Infinity;
  const failed = (error: unknown) => {
    unreported++;
    const now = Date.now();
    if (now - lastReport < REPORT_INTERVAL_MS) return;
    lastReport = now;
    const failures = unreported;
    unreported = 0;
    try {
      options.onError(options.name, error, failures);
    } catch {
      // the reporter itself failed (stderr gone): nothing more can be done, and nothing may escape
    }
  };
  const timer = setInterval(() => {
    try {
      const result = options.task();
      if (result instanceof Promise) result.catch(failed);
    } catch (error) {
      failed(error);
    }
  }, options.intervalMs);
  if (options.ref !== true) timer.unref();
  return { stop: () => clearInterval(timer) };
}
