// The server's Prometheus metrics: what it counts and how it reads the Worker's jobs. The daemon
// serves them on their own plain-HTTP listener (src/daemon/metrics-listener.ts).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { FINAL_STATES, type JobState, type Worker } from '../worker';

const STATES: readonly JobState[] = ['starting', 'running', ...FINAL_STATES];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly starts: Counter<'result'>;
  readonly stops: Counter<'result'>;
  readonly startLatency: Histogram;
  readonly activeStreams: Gauge<'rpc'>;
  readonly requests: Counter<'method' | 'code'>;
  #finishedLogBytes = 0;
  #reportedLogBytes = 0;

  constructor(worker: Worker) {
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
    this.starts = new Counter({ name: 'jobworker_job_starts_total', help: 'StartJob calls, by result', labelNames: ['result'], registers });
    this.stops = new Counter({ name: 'jobworker_job_stops_total', help: 'StopJob calls, by result', labelNames: ['result'], registers });
    this.startLatency = new Histogram({
      name: 'jobworker_job_start_latency_seconds',
      help: 'Time from a start request to the job running (cgroup set-up, spawn, record)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
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
    worker.subscribe((event) => {
      if (event.startLatencyMs !== undefined) this.startLatency.observe(event.startLatencyMs / 1000);
      if (event.status.state !== 'running' && event.status.state !== 'starting' && event.previousState === 'running') {
        this.#finishedLogBytes += event.status.log.bytes;
      }
    });
  }
}
