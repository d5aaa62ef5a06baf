// The server's Prometheus metrics: what it counts and how it reads the Worker's jobs. The daemon
// serves them on their own plain-HTTP listener (src/daemon/metrics-listener.ts).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { droppedLogLineCount } from '../logger';
import { FINAL_STATES, type JobState, type Worker } from '../worker';

const STATES: readonly JobState[] = ['starting', 'running', ...FINAL_STATES];

/** Identities with series of their own by default: bounded, whatever the number of certificates. */
export const DEFAULT_METRICS_IDENTITIES = 20;

type Resource = 'running_jobs' | 'log_bytes' | 'memory_bytes' | 'pids';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly starts: Counter<'result'>;
  readonly stops: Counter<'result'>;
  readonly startLatency: Histogram;
  readonly activeStreams: Gauge<'rpc'>;
  readonly requests: Counter<'method' | 'code'>;
  /** Starts refused at an identity's quota, by quota (no identity label: bounded). */
  readonly quotaRefusals: Counter<'quota'>;
  #finishedLogBytes = 0;
  #reportedLogBytes = 0;

  /**
   * `maxIdentities`: identities given series of their own (usage and limit per resource), those
   * closest to a quota first; the others are only in the totals, so the series stay bounded.
   */
  constructor(worker: Worker, maxIdentities = DEFAULT_METRICS_IDENTITIES) {
    collectDefaultMetrics({ register: this.registry, prefix: 'jobworker_' });
    const registers = [this.registry];
    new Gauge({
      name: 'jobworker_jobs',
      help: 'Jobs known to the daemon, by state',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<JobState, number>(STATES.map((s) => [s, 0]));
        for (const job of worker.list()) counts.set(job.state, (counts.get(job.state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
    new Gauge({
      name: 'jobworker_state_damage',
      help: 'What the last start found damaged in the state directory (the daemon log has the warning naming each job): journal lines copied aside, jobs rebuilt from their logs, jobs whose final record was lost, logs missing, links removed',
      labelNames: ['what'],
      registers,
      collect() {
        const damage = worker.recovery.damage;
        this.set({ what: 'journal_lines' }, damage?.journalLines ?? 0);
        this.set({ what: 'rebuilt_from_logs' }, damage?.rebuiltFromLogs.length ?? 0);
        this.set({ what: 'final_state_unknown' }, damage?.finalStateUnknown.length ?? 0);
        this.set({ what: 'logs_missing' }, damage?.logsMissing.length ?? 0);
        this.set({ what: 'links_removed' }, damage?.linksRemoved.length ?? 0);
      },
    });
    new Gauge({
      name: 'jobworker_journal_bytes',
      help: 'Size of the job journal (file) and of the live records in it (live); it is compacted in the background when the file is 4 times the live size',
      labelNames: ['what'],
      registers,
      collect() {
        const stats = worker.journalStats();
        this.set({ what: 'file' }, stats.bytes);
        this.set({ what: 'live' }, stats.liveBytes);
      },
    });
    new Counter({
      name: 'jobworker_journal_compactions_total',
      help: 'Journal compactions done while running',
      registers,
      collect() {
        // The Worker counts; the counter shows its total.
        this.reset();
        this.inc(worker.journalStats().compactions);
      },
    });
    new Counter({
      name: 'jobworker_log_lines_dropped_total',
      help: "The daemon's own log lines that stderr refused (EPIPE: its reader went away; EAGAIN: a full non-blocking pipe)",
      registers,
      collect() {
        this.reset();
        this.inc(droppedLogLineCount());
      },
    });
    this.starts = new Counter({ name: 'jobworker_job_starts_total', help: 'StartJob calls, by result', labelNames: ['result'], registers });
    this.stops = new Counter({ name: 'jobworker_job_stops_total', help: 'StopJob calls, by result', labelNames: ['result'], registers });
    this.startLatency = new Histogram({
      name: 'jobworker_job_start_latency_seconds',
      help: 'Time from a start request to the job running (cgroup set-up, spawn, record)',
      // Fine around a start's usual 1–5 ms: a percentile is interpolated inside its bucket, and with
      // one bucket for 2–5 ms a p50 just past 2 ms read as 2.4–2.8.
      buckets: [0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.activeStreams = new Gauge({ name: 'jobworker_active_streams', help: 'Open server streams, by RPC', labelNames: ['rpc'], registers });
    this.requests = new Counter({ name: 'jobworker_grpc_requests_total', help: 'Finished RPCs, by method and status code', labelNames: ['method', 'code'], registers });
    const metrics = this;
    new Counter({
      name: 'jobworker_log_bytes_written_total',
      help: 'Bytes of job output written to logs',
      registers,
      collect() {
        let total = metrics.#finishedLogBytes;
        for (const job of worker.list({ states: ['running'] })) total += job.status().log.bytes;
        if (total > metrics.#reportedLogBytes) {
          this.inc(total - metrics.#reportedLogBytes);
          metrics.#reportedLogBytes = total;
        }
      },
    });
    this.quotaRefusals = new Counter({
      name: 'jobworker_quota_refusals_total',
      help: 'Starts refused because their identity was at a quota, by quota',
      labelNames: ['quota'],
      registers,
    });
    // One reading per scrape for both gauges: the registry collects its metrics concurrently, the
    // usage gauge (registered first) starts the reading and the limit gauge awaits the same one.
    let reading: Promise<IdentityRow[]> = Promise.resolve([]);
    new Gauge({
      name: 'jobworker_identity_usage',
      help: `What an identity uses, by resource (the ${maxIdentities} identities closest to a quota; see docs/security.md)`,
      labelNames: ['identity', 'resource'],
      registers,
      async collect() {
        reading = readIdentities(worker, maxIdentities);
        this.reset();
        for (const row of await reading) this.set({ identity: row.identity, resource: row.resource }, row.used);
      },
    });
    new Gauge({
      name: 'jobworker_identity_limit',
      help: 'An identity\'s limit, by resource (for the identities in jobworker_identity_usage)',
      labelNames: ['identity', 'resource'],
      registers,
      async collect() {
        this.reset();
        for (const row of await reading) if (row.limit !== undefined) this.set({ identity: row.identity, resource: row.resource }, row.limit);
      },
    });
    new Gauge({
      name: 'jobworker_identities_active',
      help: 'Identities with a job running or a log on disk',
      registers,
      collect() {
        this.set(worker.activeIdentities().length);
      },
    });
    worker.subscribe((event) => {
      if (event.startLatencyMs !== undefined) this.startLatency.observe(event.startLatencyMs / 1000);
      if (event.status.state !== 'running' && event.status.state !== 'starting' && event.previousState === 'running') {
        this.#finishedLogBytes += event.status.log.bytes;
      }
    });
  }
}

interface IdentityRow {
  identity: string;
  resource: Resource;
  used: number;
  limit: number | undefined;
}

/** Usage and limit per resource of the identities nearest a quota (their slices read in one batch each). */
async function readIdentities(worker: Worker, count: number): Promise<IdentityRow[]> {
  const rows: IdentityRow[] = [];
  for (const identity of closestToQuota(worker, count)) {
    const quotas = worker.quotaUsage(identity);
    rows.push({ identity, resource: 'running_jobs', used: quotas.runningJobs, limit: quotas.maxRunningJobs });
    rows.push({ identity, resource: 'log_bytes', used: quotas.logBytes, limit: quotas.maxLogBytes });
    const slice = await worker.identityUsage(identity).catch(() => null);
    if (slice === null) continue;
    rows.push({ identity, resource: 'memory_bytes', used: slice.stats?.memoryCurrentBytes ?? 0, limit: slice.limits.memoryBytes });
    rows.push({ identity, resource: 'pids', used: slice.stats?.pidsCurrent ?? 0, limit: slice.limits.pids });
  }
  return rows;
}

/** The `count` identities nearest one of their quotas (running jobs, log bytes), nearest first. */
export function closestToQuota(worker: Pick<Worker, 'activeIdentities' | 'quotaUsage'>, count: number): string[] {
  const ratio = (identity: string): number => {
    const usage = worker.quotaUsage(identity);
    return Math.max(usage.runningJobs / usage.maxRunningJobs, usage.logBytes / usage.maxLogBytes);
  };
  return worker
    .activeIdentities()
    .map((identity) => ({ identity, ratio: ratio(identity) }))
    .sort((a, b) => b.ratio - a.ratio || (a.identity < b.identity ? -1 : 1))
    .slice(0, count)
    .map(({ identity }) => identity);
}
