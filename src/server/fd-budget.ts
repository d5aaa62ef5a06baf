// The daemon's file descriptor budget: what jobs, connections and log streams may hold, so that a
// request that would fill the fd table is refused with a clear answer before it is full, instead of
// the table filling up and every open(2) in the process failing with EMFILE (accept, spawn, the
// journal, a timer's process.memoryUsage()).
//
// The table's size is the soft RLIMIT_NOFILE, which Node raises to the hard limit at start-up
// (src/node.cc, PlatformInit); /proc/self/limits tells both. Of it, what was open when the server
// started plus a reserve stays for the daemon itself (the journal, spawns in flight — a spawn holds
// about ten fds for a moment: pipes, the cgroup, the gate — the threadpool's file operations,
// metrics scrapes); the rest is the budget. Counting what each holder takes is exact and free;
// listing /proc/self/fd on every request would be neither. Connections may hold at most half of the
// budget (accepted connections are counted before TLS, so anyone who can reach the port can take
// them), one identity's running jobs at most `identityJobShare` of it and its log streams at most
// `identityStreamShare`, so neither a connection storm nor one identity's jobs or streams leave
// nothing for the others.
import { readdirSync, readFileSync } from 'node:fs';

import { JobworkerError } from '../errors';

/**
 * A running job holds 4 fds in the daemon: its pidfd, the read ends of its stdout and stderr pipes,
 * its log file; and a 5th (/dev/null) while its output is being dropped (log cap, full disk).
 */
export const FDS_PER_JOB = 5;
/** A connection holds its socket (the TLS socket and the HTTP/2 session above it share the fd). */
export const FDS_PER_CONNECTION = 1;
/** A StreamLogs stream holds the log file it reads. */
export const FDS_PER_LOG_STREAM = 1;
/** Default fds kept for the daemon itself beyond those open at start. */
export const DEFAULT_FD_RESERVE = 256;
/** Default share of the budget one identity's running jobs may hold, so others can still start. */
export const DEFAULT_IDENTITY_JOB_SHARE = 0.5;
/** Default share of the budget one identity's log streams may hold. */
export const DEFAULT_IDENTITY_STREAM_SHARE = 0.25;
/**
 * Share of the budget connections may hold: a storm of connections (unauthenticated ones
 * included: they are counted from accept, before TLS) must leave room for jobs.
 */
export const CONNECTION_SHARE = 0.5;

export interface OpenFilesLimit {
  soft: number;
  hard: number;
}

/** The process's RLIMIT_NOFILE, from /proc/self/limits ("unlimited" reads as Infinity). */
export function openFilesLimit(limitsText: string = readFileSync('/proc/self/limits', 'utf8')): OpenFilesLimit {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limitsText);
  if (match === null) throw new JobworkerError('internal', 'no "Max open files" line in /proc/self/limits');
  const value = (text: string) => (text === 'unlimited' ? Infinity : Number(text));
  return { soft: value(match[1]!), hard: value(match[2]!) };
}

/** Fds open in this process now (at start-up only: it costs a directory read). */
export function openFileCount(): number {
  return readdirSync('/proc/self/fd').length - 1; // less the directory's own fd
}

/** What holds fds now, as the budget counts them. */
export interface FdHolders {
  runningJobs(): number;
  connections(): number;
  logStreams(): number;
}

export interface FdBudgetOptions {
  /** The fd table's size (the soft RLIMIT_NOFILE). */
  limit: number;
  /** Fds kept for the daemon: those open at start plus a reserve. */
  reserved: number;
  /** Share of the budget one identity's running jobs may hold (0–1]. */
  identityJobShare?: number;
  /** Share of the budget one identity's log streams may hold (0–1]. */
  identityStreamShare?: number;
}

export type FdUse = 'job' | 'connection' | 'log stream';

export class FdBudget {
  readonly limit: number;
  readonly reserved: number;
  /** What jobs, connections and log streams may hold in all. */
  readonly total: number;
  readonly identityJobShare: number;
  readonly identityStreamShare: number;
  #holders: FdHolders;

  constructor(options: FdBudgetOptions, holders: FdHolders) {
    this.limit = options.limit;
    this.reserved = options.reserved;
    this.total = Math.max(0, options.limit - options.reserved);
    this.identityJobShare = options.identityJobShare ?? DEFAULT_IDENTITY_JOB_SHARE;
    this.identityStreamShare = options.identityStreamShare ?? DEFAULT_IDENTITY_STREAM_SHARE;
    this.#holders = holders;
  }

  /** Fds held now by jobs, connections and log streams. */
  inUse(): { jobs: number; connections: number; logStreams: number; total: number } {
    const jobs = this.#holders.runningJobs() * FDS_PER_JOB;
    const connections = this.#holders.connections() * FDS_PER_CONNECTION;
    const logStreams = this.#holders.logStreams() * FDS_PER_LOG_STREAM;
    return { jobs, connections, logStreams, total: jobs + connections + logStreams };
  }

  /** Fds connections may hold at most (CONNECTION_SHARE of the budget). */
  get connectionShare(): number {
    return Math.floor(this.total * CONNECTION_SHARE);
  }

  /** Whether one more `use` fits (a connection: within the connections' share too). */
  allows(use: FdUse): boolean {
    const now = this.inUse();
    if (use === 'connection' && now.connections + FDS_PER_CONNECTION > this.connectionShare) return false;
    return now.total + costOf(use) <= this.total;
  }

  /**
   * Throws RESOURCE_EXHAUSTED naming the budget if one more `use` does not fit, or (a job, a log
   * stream) if the caller's own of that kind, `identity.holding`, already take its share.
   */
  check(use: FdUse, identity?: { name: string; holding: number }): void {
    const now = this.inUse();
    if (now.total + costOf(use) > this.total) {
      throw new JobworkerError(
        'resource-exhausted',
        `the daemon's file descriptor budget is used up: ${now.total} of ${this.total} in use ` +
          `(jobs ${now.jobs}, connections ${now.connections}, log streams ${now.logStreams}; ` +
          `RLIMIT_NOFILE ${this.limit}, ${this.reserved} kept for the daemon); a ${use} needs ${costOf(use)}`,
      );
    }
    if (use === 'connection' || identity === undefined) return;
    const shareOf = use === 'job' ? this.identityJobShare : this.identityStreamShare;
    const share = Math.floor((this.total * shareOf) / costOf(use));
    if (identity.holding < share) return;
    const what = use === 'job' ? `${identity.holding} jobs running` : `${identity.holding} log streams open`;
    const setting = use === 'job' ? 'identityJobShare' : 'identityStreamShare';
    throw new JobworkerError(
      'resource-exhausted',
      `${identity.name} has ${what}, the most one identity may hold within the daemon's file descriptor budget ` +
        `(${Math.round(shareOf * 100)}% of ${this.total} fds, ${costOf(use)} per ${use}; fileDescriptors.${setting})`,
    );
  }
}

function costOf(use: FdUse): number {
  return use === 'job' ? FDS_PER_JOB : use === 'connection' ? FDS_PER_CONNECTION : FDS_PER_LOG_STREAM;
}
