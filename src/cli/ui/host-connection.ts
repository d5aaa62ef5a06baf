// One daemon as the UI sees it: a connection with the user's credentials for that context, the jobs
// it shows (ListJobs, then WatchJobs for every change), and whether it is up. A daemon that cannot
// be reached is "down" with the reason, and is tried again with a growing delay (1 s to 30 s); the
// other daemons are not affected. WatchJobs says nothing about removed jobs, so the list is read
// again every 30 s while up (and a removal made through the UI is applied at once).
import { setTimeout as sleep } from 'node:timers/promises';

import { ClientError, JobworkerClient, type JobView } from '../../client';
import { TlsMaterialError } from '../../pki/load';
import { CliError } from '../run';
import type { ResolvedConnection } from '../job-cli/connection';
import { describeCallError, describeConnectFailure, describeTlsMaterialError } from '../job-cli/errors';
import type { HostStatus, UiHost } from './protocol';

const RECONCILE_MS = 30_000;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

export type HostEvent =
  | { type: 'status'; host: UiHost }
  | { type: 'jobs'; jobs: JobView[] }
  | { type: 'job'; job: JobView }
  | { type: 'job-removed'; id: string };

/** A failure as the one line (and hint) job-cli would print. */
export function describeFailure(error: unknown, connection: ResolvedConnection): string {
  let described: CliError | undefined;
  if (error instanceof CliError) described = error;
  else if (error instanceof ClientError) described = describeCallError(error, connection);
  else if (error instanceof TlsMaterialError) described = describeTlsMaterialError(error, connection);
  if (described === undefined) return error instanceof Error ? error.message : String(error);
  return described.hint === undefined ? described.message : `${described.message} (hint: ${described.hint})`;
}

/** The wait before attempt `attempt` (0-based) after a failure: doubling from 1 s to 30 s, ±20%. */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class HostConnection {
  readonly name: string;
  readonly connection: ResolvedConnection;
  #timeoutMs: number;
  #client: JobworkerClient | undefined;
  #jobs = new Map<string, JobView>();
  #status: HostStatus = 'connecting';
  #error: string | null = null;
  #retryAt: number | null = null;
  #listeners = new Set<(event: HostEvent) => void>();
  #stopped = new AbortController();

  constructor(name: string, connection: ResolvedConnection, timeoutMs: number) {
    this.name = name;
    this.connection = connection;
    this.#timeoutMs = timeoutMs;
  }

  get view(): UiHost {
    return {
      name: this.name,
      address: this.connection.address,
      status: this.#status,
      error: this.#error,
      retryAt: this.#retryAt,
      identity: this.#client?.identity ?? null,
    };
  }

  /** The connected client; a CliError saying why there is none while the daemon is not up. */
  client(): JobworkerClient {
    if (this.#status !== 'up' || this.#client === undefined) {
      throw new CliError(`${this.name} (${this.connection.address}) is ${this.#status}${this.#error === null ? '' : `: ${this.#error}`}`);
    }
    return this.#client;
  }

  jobs(): JobView[] {
    return [...this.#jobs.values()];
  }

  job(id: string): JobView | undefined {
    return this.#jobs.get(id);
  }

  subscribe(listener: (event: HostEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A job removed through the UI: gone from the list at once. */
  forget(id: string): void {
    if (this.#jobs.delete(id)) this.#emit({ type: 'job-removed', id });
  }

  /** A job's newer record (an answer to a call of the UI's): shown at once. */
  update(job: JobView): void {
    this.#jobs.set(job.id, job);
    this.#emit({ type: 'job', job });
  }

  /** Connects, follows the jobs, and reconnects after a failure, until stop(). */
  async run(): Promise<void> {
    const signal = this.#stopped.signal;
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await this.#session(signal, () => {
          attempt = 0;
        });
        if (signal.aborted) return;
        throw new CliError(`the daemon at ${this.connection.address} ended the watch (shutting down?)`);
      } catch (error) {
        if (signal.aborted) return;
        const delay = retryDelayMs(attempt);
        this.#setStatus('down', describeFailure(error, this.connection), Date.now() + delay);
        if (this.#jobs.size > 0) {
          this.#jobs.clear();
          this.#emit({ type: 'jobs', jobs: [] });
        }
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
      if (!signal.aborted) this.#setStatus('connecting', this.#error, null);
    }
  }

  stop(): void {
    this.#stopped.abort();
    this.#client?.close();
    this.#client = undefined;
  }

  async #session(signal: AbortSignal, connected: () => void): Promise<void> {
    const client = await JobworkerClient.connect({ address: this.connection.address, tls: this.connection.tls, callTimeoutMs: this.#timeoutMs });
    this.#client = client;
    const ended = new AbortController();
    const stop = () => ended.abort();
    signal.addEventListener('abort', stop, { once: true });
    try {
      const health = await client.checkHealth(this.#timeoutMs).catch((error: unknown) => {
        throw error instanceof ClientError ? describeConnectFailure(error, this.connection, this.#timeoutMs) : error;
      });
      if (health !== 'SERVING') throw new CliError(`the daemon at ${this.connection.address} is not serving (${health.toLowerCase()}); it may be shutting down`);
      await this.#replaceJobs(client);
      // Changes that came between the list and the start of the watch are in its first messages.
      const watch = client.watchJobs({}, ended.signal);
      this.#setStatus('up', null, null);
      connected();
      const reconciling = this.#reconcileEvery(client, ended.signal);
      try {
        for await (const change of watch) this.update(change.job);
      } finally {
        ended.abort();
        await reconciling;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      if (this.#client === client) this.#client = undefined;
      client.close();
    }
  }

  async #replaceJobs(client: JobworkerClient): Promise<void> {
    const jobs = await client.listAllJobs();
    this.#jobs = new Map(jobs.map((job) => [job.id, job]));
    this.#emit({ type: 'jobs', jobs });
  }

  /**
   * Drops the jobs the daemon no longer has and adds any the watch missed. Known jobs keep the
   * watch's record: a list that started before a change could carry an older one.
   */
  async #reconcileEvery(client: JobworkerClient, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if ((await sleep(RECONCILE_MS, false, { signal }).catch(() => true)) || signal.aborted) return;
      const before = new Set(this.#jobs.keys());
      // A failed list is the watch's problem to report (the connection is the same).
      const jobs = await client.listAllJobs().catch(() => undefined);
      if (jobs === undefined || signal.aborted) continue;
      const listed = new Set(jobs.map((job) => job.id));
      for (const id of before) if (!listed.has(id)) this.forget(id);
      for (const job of jobs) if (!this.#jobs.has(job.id)) this.update(job);
    }
  }

  #setStatus(status: HostStatus, error: string | null, retryAt: number | null): void {
    [this.#status, this.#error, this.#retryAt] = [status, error, retryAt];
    this.#emit({ type: 'status', host: this.view });
  }

  #emit(event: HostEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
