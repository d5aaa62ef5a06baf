// Audit lines a client can trigger at will (a refused call, a refused connection), rate-limited
// and aggregated: the first of each kind per key (identity or peer address) in an interval is
// written at once with its reason, the rest are counted and written as one line per key at the
// end of the interval ("call refused (repeated)", repeated: N). One reader calling in a loop wrote
// ~0.5 MB/s of "call refused" lines before; it now writes two lines per interval. At most MAX_KEYS
// keys are told apart per interval (an attacker can vary its address): the rest share one line.
import type { LogFields, Logger } from '../logger';
import { runPeriodically, type PeriodicTask } from '../periodic';

export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 10_000;
const MAX_KEYS = 100;
const OTHERS = '(others)';

interface Entry {
  msg: string;
  fields: LogFields;
  repeated: number;
}

export class RefusalLog {
  readonly intervalMs: number;
  #audit: Logger;
  #entries = new Map<string, Entry>();
  #timer: PeriodicTask;

  constructor(audit: Logger, intervalMs: number = DEFAULT_REFUSAL_LOG_INTERVAL_MS, onError: (name: string, error: unknown, failures: number) => void = () => undefined) {
    this.#audit = audit;
    this.intervalMs = intervalMs;
    this.#timer = runPeriodically({ name: 'refusal log summary', intervalMs, task: () => this.flush(), onError });
  }

  /** One refusal of kind `msg` for `key` (an identity, or a peer address); `fields` say what and why. */
  note(msg: string, key: string, fields: LogFields): void {
    let id = `${msg}\0${key}`;
    let entry = this.#entries.get(id);
    if (entry === undefined && this.#entries.size >= MAX_KEYS) {
      id = `${msg}\0${OTHERS}`;
      entry = this.#entries.get(id);
      fields = { ...fields, who: OTHERS, address: OTHERS };
    }
    if (entry === undefined) {
      this.#entries.set(id, { msg, fields, repeated: 0 });
      this.#audit.info(msg, fields);
      return;
    }
    entry.repeated++;
    entry.fields = fields;
  }

  /** Writes one line per key refused again since its first line, and starts a new interval. */
  flush(): void {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    for (const entry of entries) {
      if (entry.repeated > 0) this.#audit.info(`${entry.msg} (repeated)`, { ...entry.fields, repeated: entry.repeated, intervalMs: this.intervalMs });
    }
  }

  /** Writes what is pending and stops the timer. */
  close(): void {
    this.#timer.stop();
    this.flush();
  }
}
