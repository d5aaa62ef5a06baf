// What a reliability scenario is and what it is given: a work directory, the run's seed, whether
// this is the long soak, a place to record its figures, and cleanups that run whatever happens
// (failure or timeout) so no daemon, mount, cgroup or temporary file outlives the run.

export type Figure = string | number | boolean;

export interface ScenarioContext {
  /** The long version (`--soak`): more jobs, streams and bytes, longer time bounds. */
  readonly soak: boolean;
  /** Seed for every pseudo-random choice (fast-check runs included), printed so a run can be replayed. */
  readonly seed: number;
  /** A directory of this scenario's own, removed afterwards. */
  readonly workDir: string;
  /** Progress lines (stderr). */
  log(message: string): void;
  /** Records a measured figure; shown in the summary and in the JSON results. */
  figure(name: string, value: Figure): void;
  /** Runs after the scenario (last registered first), even if it failed or timed out. */
  defer(cleanup: () => unknown): void;
  /** Aborted when the scenario's time is up: long loops check it. */
  readonly signal: AbortSignal;
}

export interface Scenario {
  /** Short id, used by `--only`. */
  name: string;
  group: 'load' | 'faults' | 'bad input' | 'security';
  /** What is claimed, in one line (the table's first column). */
  title: string;
  /** Upper bound on the scenario's wall time; it fails if it takes longer. */
  timeoutMs(soak: boolean): number;
  run(ctx: ScenarioContext): Promise<void>;
}
