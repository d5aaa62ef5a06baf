// What the client is asked for: plain TypeScript objects (./convert.ts makes the wire messages).
// Absent fields take the daemon's defaults.
import type { JobStateName } from '../api/job-state-names';
import type { MountView, NamespaceViewName, NetworkName, OutputStreamName } from './views';

export interface StartJobRequest {
  command: string;
  args?: string[];
  /** The job's whole environment (none: just a default PATH). */
  env?: Record<string, string>;
  /** Absolute, on the daemon's host (default /). */
  cwd?: string;
  limits?: LimitsRequest;
  /** Run as this user, by number (admins only); default: the caller's mapped user, else a dynamic uid. */
  user?: { uid: number; gid: number; groups?: number[] };
  /** Run as this user, by name, resolved by the daemon (admins only; not with `user`). */
  userName?: string;
  /** With userName: the primary group by name. */
  groupName?: string;
  /** Default: the daemon's. */
  network?: NetworkName;
  /** Host paths shown inside the job (a role the daemon allows; admins by default). */
  mounts?: MountView[];
  /** Every mount read-only but the job's scratch directory, private /tmp and writable mounts. */
  readOnlyRoot?: boolean;
  /** Namespaces shared with the host (opt-outs the daemon must allow the caller). */
  hostNamespaces?: Exclude<NamespaceViewName, 'network'>[];
  /** Run it on whichever daemon of this pool has room (docs/fleet.md). */
  pool?: string;
  /** Pool jobs: re-runs after a lost run (default 0: at most once). */
  retries?: number;
  /** Stop it after this long (ms from its start), like systemd's RuntimeMaxSec=; it ends failed, timedOut. Not for pool jobs. */
  maxRuntimeMs?: number;
  /** Pool jobs: the job's id (a lower-case UUID); the client picks one when absent, so that a retried StartJob runs the job once. */
  jobId?: string;
  /** A name, unique among the caller's jobs until removed; usable wherever an id is. Not for pool jobs. */
  name?: string;
  /** Labels to find it by (ListJobsRequest.labels). Not for pool jobs. */
  labels?: Record<string, string>;
}

export interface LimitsRequest {
  cpu?: number;
  cpuWeight?: number;
  memoryBytes?: number;
  memoryHighBytes?: number;
  pids?: number;
  io?: IoLimitRequest[];
}

export interface IoLimitRequest {
  /** A device node, MAJ:MIN or any path on the disk; absent or empty: the working directory's disk. */
  device?: string;
  readBytesPerSecond?: number;
  writeBytesPerSecond?: number;
  readIops?: number;
  writeIops?: number;
}

export interface StopJobOptions {
  /** First signal (default SIGTERM). */
  signal?: string;
  /** Time between it and the kill (default: the daemon's). */
  graceMs?: number;
}

export interface ListJobsRequest {
  /** None: every state. */
  states?: JobStateName[];
  /** Admins: only this identity's jobs. */
  owner?: string;
  /** Only the jobs with this name. */
  name?: string;
  /** Only the jobs whose labels match every term: "key=value", or "key" for a label with any value. */
  labels?: string[];
  pageSize?: number;
  pageToken?: string;
}

/** How the client hands out a log stream's messages (not sent to the daemon). */
export interface StreamLogsOptions {
  /**
   * Reuse the memory behind a message's chunk data once the next message is asked for: each
   * chunk's `data` is then valid only until the loop moves on (like Go's bufio.Scanner.Bytes). For
   * readers that write out or copy every chunk first (job-cli stream does): at hundreds of MB/s a
   * fresh buffer per message costs the client about a third of its CPU, most of it in the GC.
   * Default false: every chunk's data stays valid for as long as it is held.
   */
  reuseBuffers?: boolean;
}

export interface StreamLogsRequest {
  /** The job's id or name. */
  jobId: string;
  /** A record boundary: 0, or a chunk's nextOffset to resume. */
  fromOffset?: number;
  /** Keep streaming until the job ends. */
  follow?: boolean;
  /** None: both. */
  streams?: OutputStreamName[];
  /** Start this many lines before the current end. */
  tailLines?: number;
  sinceUnixMicros?: number;
}

export interface WatchJobsRequest {
  /** One job, by id or name; none: every job the caller may see. */
  jobId?: string;
  states?: JobStateName[];
}
