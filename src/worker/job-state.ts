// The job lifecycle, in one place (docs/library.md draws it):
//
//   starting ──▶ running ──▶ exited    the process ended by itself with code 0
//                   │   └──▶ failed    … with another code, a signal, or killed by the OOM killer
//                   ├──────▶ stopped   a stop request ended it (whatever the exit status)
//                   └──────▶ lost      the daemon stopped tracking it (crash/restart) — see recovery
//
// A start that fails (bad command, cgroup error) never becomes a job: start() throws and leaves
// nothing behind. The reason for a final state is kept separately in `JobOutcome`.

import { JobworkerError } from '../errors';

export type JobState = 'starting' | 'running' | 'exited' | 'failed' | 'stopped' | 'lost';

export const FINAL_STATES: readonly JobState[] = ['exited', 'failed', 'stopped', 'lost'];

export function isFinal(state: JobState): boolean {
  return FINAL_STATES.includes(state);
}

const allowed: Record<JobState, readonly JobState[]> = {
  starting: ['running', 'lost'],
  running: ['exited', 'failed', 'stopped', 'lost'],
  exited: [],
  failed: [],
  stopped: [],
  lost: [],
};

export function canTransition(from: JobState, to: JobState): boolean {
  return allowed[from].includes(to);
}

/** Throws (an internal error: a bug, not a user's mistake) unless `from → to` is a step of the lifecycle. */
export function assertTransition(jobId: string, from: JobState, to: JobState): void {
  if (!canTransition(from, to)) throw new JobworkerError('internal', `job ${jobId}: state ${from} cannot go to ${to} (a bug)`);
}

/** How a finished job ended. */
export interface JobOutcome {
  /** Exit code of the main process, or null if a signal ended it (or it is unknown: lost). */
  exitCode: number | null;
  /** Signal that ended the main process, e.g. "SIGKILL". */
  signal: NodeJS.Signals | null;
  /** The kernel's OOM killer killed a process of the job (from the cgroup's counter, not a guess). */
  oomKilled: boolean;
  /** Who asked for the stop, when the state is `stopped`. */
  stoppedBy: string | null;
  /** It reached its maxRuntimeMs and was stopped for it (the state is then `failed`). */
  timedOut: boolean;
  /** One line for people: "exited with code 0", "killed by SIGKILL (out of memory)", … */
  reason: string;
}

export interface ExitFacts {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  oomKilled: boolean;
  stoppedBy: string | null;
  /** Stopped for its maximum runtime, which was this many ms (null: it was not). */
  timedOutAfterMs: number | null;
}

/** "10m", "1h30m", "1.5s": a runtime limit as people write it. */
function formatLimitMs(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  let seconds = ms / 1000;
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) {
    if (seconds >= size) {
      parts.push(`${Math.floor(seconds / size)}${unit}`);
      seconds %= size;
    }
  }
  if (seconds > 0 || parts.length === 0) parts.push(`${seconds}s`);
  return parts.join('');
}

/** Pure: the final state and outcome from what happened. */
export function finalStateOf(facts: ExitFacts): { state: JobState; outcome: JobOutcome } {
  const how =
    facts.signal !== null
      ? `killed by ${facts.signal}${facts.oomKilled ? ' (out of memory)' : ''}`
      : `exited with code ${facts.exitCode}${facts.oomKilled ? ' (a process was killed: out of memory)' : ''}`;
  // Outcomes are spelled out in one literal (outcomeOf), not `{ ...facts, more }`: V8 gives each object
  // made that way a hidden class of its own, and a record keeps its outcome.
  const outcomeOf = (stoppedBy: string | null, timedOut: boolean, reason: string): JobOutcome => ({
    exitCode: facts.exitCode,
    signal: facts.signal,
    oomKilled: facts.oomKilled,
    stoppedBy,
    timedOut,
    reason,
  });
  if (facts.timedOutAfterMs !== null) {
    return { state: 'failed', outcome: outcomeOf(null, true, `timed out after ${formatLimitMs(facts.timedOutAfterMs)}: ${how}`) };
  }
  if (facts.stoppedBy !== null) {
    return { state: 'stopped', outcome: outcomeOf(facts.stoppedBy, false, `stopped by ${facts.stoppedBy}: ${how}`) };
  }
  const clean = facts.signal === null && facts.exitCode === 0 && !facts.oomKilled;
  return { state: clean ? 'exited' : 'failed', outcome: outcomeOf(null, false, how) };
}

export function lostOutcome(why: string): JobOutcome {
  return { exitCode: null, signal: null, oomKilled: false, stoppedBy: null, timedOut: false, reason: `lost: ${why}` };
}
