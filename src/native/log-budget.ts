// An identity's log budget (native/log_budget.h): the bytes of log its jobs may still write, shared by
// their capture (each spawn is handed it) and charged by the capture thread as it appends, so that the
// identity's logs together never pass the limit, however many of its jobs write at once.
import { binding, type BindingLogBudget } from './binding';

export class LogBudget {
  /** @internal what spawn() hands the addon */
  readonly handle: BindingLogBudget;

  constructor(limitBytes: number) {
    this.handle = new binding.LogBudget(limitBytes);
  }

  get limit(): number {
    return this.handle.limit;
  }

  /** Bytes charged: what the jobs' capture appended (after each file header), plus what was charged. */
  get used(): number {
    return this.handle.used;
  }

  /** What is left (never below 0). */
  get available(): number {
    return Math.max(0, this.handle.limit - this.handle.used);
  }

  /** Charges bytes already on disk (the logs of finished jobs, at start-up). */
  charge(bytes: number): void {
    this.handle.add(bytes);
  }

  /** Releases the bytes of a log that was removed. */
  release(bytes: number): void {
    this.handle.add(-bytes);
  }
}
