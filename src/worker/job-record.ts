// A job's record: what the journal keeps of it and what the Worker holds in memory. Bounded
// whatever the job's spec: a spec whose argv and environment take more than INLINE_SPEC_BYTES is
// kept whole in a spec file of its own, written once (./spec-file.ts), and the record carries the
// arguments that fit in ARGS_PREVIEW_BYTES; GetJob reads the rest from the file. Before, every
// journal line carried the whole spec (up to 1 MiB, more once escaped), so a few hundred jobs made
// a journal no start could read and each retained job cost its spec in RSS.
import type { CgroupStats, Limits } from '../cgroup';
import type { JobIsolation } from './isolation';
import { NO_LABELS } from './job-labels';
import type { JobRunAs, JobUserChoice, ResolvedJobSpec } from './job-spec';
import type { JobOutcome, JobState } from './job-state';

/** argv + environment, as JSON, up to which a spec is kept in the record itself. */
export const INLINE_SPEC_BYTES = 8 << 10;
/** The leading arguments a record keeps (as JSON) when the spec is in its own file. */
export const ARGS_PREVIEW_BYTES = 1 << 10;

export interface JobLogInfo {
  bytes: number;
  droppedBytes: number;
  truncated: boolean;
  writeError: string | null;
}

/** The spec as the record keeps it. */
export interface RecordedSpec {
  command: string;
  /** Every argument; or, when `env` is null (the spec is in its file), the leading ones that fit. */
  args: string[];
  /** Arguments not in `args`, to be read from the spec file (0: `args` is complete). */
  argsOmitted: number;
  /** The environment; null when the whole spec is in its spec file. */
  env: Record<string, string> | null;
  /** null until the job has its scratch directory (then that directory). */
  cwd: string | null;
  limits: Limits;
  owner: string;
  /** Who it was asked to run as (null: the worker's default); `runAs` says who it runs as. */
  user: JobUserChoice | null;
  /** Absent in records written before it existed: no limit. */
  maxRuntimeMs?: number | null;
  /**
   * Kept in the record even when the rest of the spec is in its file: listings and name lookups
   * read them (bounded: 64 characters, LABEL_BOUNDS). Absent in records written before they existed.
   */
  name?: string | null;
  labels?: Readonly<Record<string, string>>;
}

export interface JobRecord {
  version: 2;
  id: string;
  spec: RecordedSpec;
  /** The whole spec is in `logs/<id>.spec` (written once, before the first journal entry). */
  specFile: boolean;
  state: JobState;
  outcome: JobOutcome | null;
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  log: JobLogInfo;
  /** Final resource use, taken before the cgroup was removed. */
  stats: CgroupStats | null;
  /**
   * Set when recovery rebuilt the record from what was intact (its log, its spec file) because its
   * journal entries were damaged or missing: says what is not known.
   */
  rebuilt: string | null;
  /** Who it runs as (absent in records written before jobs had their own users: the daemon's, root). */
  runAs?: JobRunAs;
  /** Its isolation (absent in older records: none, the host's namespaces). */
  isolation?: JobIsolation;
  /** Its scratch directory, null if it was given a working directory. */
  scratchDir?: string | null;
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/** The leading arguments whose JSON fits in ARGS_PREVIEW_BYTES. */
function argsPreview(args: readonly string[]): string[] {
  const preview: string[] = [];
  let bytes = 2;
  for (const arg of args) {
    bytes += jsonBytes(arg) + 1;
    if (bytes > ARGS_PREVIEW_BYTES) break;
    preview.push(arg);
  }
  return preview;
}

/**
 * How a spec is recorded: whole when small; otherwise a bounded summary, and the spec itself goes to
 * its spec file (`specFile` true).
 */
export function recordSpec(spec: ResolvedJobSpec): { spec: RecordedSpec; specFile: boolean } {
  const inline = jsonBytes(spec.args) + jsonBytes(spec.env) <= INLINE_SPEC_BYTES;
  const args = inline ? spec.args : argsPreview(spec.args);
  // One literal (not a spread plus more keys): V8 gives every object made by `{ ...a, b }` a hidden
  // class of its own, ~1 KiB a job across the objects a job keeps.
  const recorded: RecordedSpec = {
    command: spec.command,
    args,
    argsOmitted: spec.args.length - args.length,
    env: inline ? spec.env : null,
    cwd: spec.cwd,
    limits: spec.limits,
    owner: spec.owner,
    user: spec.user,
    maxRuntimeMs: spec.maxRuntimeMs,
    name: spec.name,
    // Most jobs have none: they share one empty object instead of one each.
    labels: Object.keys(spec.labels).length === 0 ? NO_LABELS : spec.labels,
  };
  return { spec: recorded, specFile: !inline };
}

/** A new job's record, before it runs. */
export function newJobRecord(id: string, spec: ResolvedJobSpec, createdAt: Date, isolation: JobIsolation): JobRecord {
  const recorded = recordSpec(spec);
  // One literal: records share one hidden class (runAs and scratchDir, added at launch in one
  // order, extend it the same way for every job).
  return {
    version: 2,
    id,
    spec: recorded.spec,
    specFile: recorded.specFile,
    state: 'starting',
    outcome: null,
    pid: null,
    createdAt: createdAt.toISOString(),
    startedAt: null,
    finishedAt: null,
    log: { bytes: 0, droppedBytes: 0, truncated: false, writeError: null },
    stats: null,
    rebuilt: null,
    isolation,
  };
}
