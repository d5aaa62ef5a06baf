import { setTimeout as sleep } from 'node:timers/promises';

import { Command, Option } from 'clipanion';

import type { JobworkerClient } from '../../client';
import { ClientError, StatusCode } from '../../client/basics';
import { flagError } from '../run';
import { ClientCommand, parseFlag } from './client-command';
import { commandLine, renderTable, truncate } from './format';
import { toJobReport, type JobReport } from './job-report';
import { formatBytes, formatPercent, formatRate, parseDuration } from './units';

/** One job's counters at one moment. */
export interface Reading {
  job: JobReport;
  /** When the reading was taken, ms (any monotonic clock). */
  atMs: number;
}

/** A line of `top`: rates over the time between two readings. */
export interface TopRow {
  id: string;
  command: string;
  /** Percent of one CPU over the interval; null on a job's first reading. */
  cpuPercent: number | null;
  memoryBytes: number;
  memoryLimitBytes: number | null;
  memoryPercent: number | null;
  pids: number;
  /** Disk bytes per second over the interval, all devices; null on a job's first reading. */
  ioReadBytesPerSecond: number | null;
  ioWriteBytesPerSecond: number | null;
}

const sum = (job: JobReport, key: 'readBytes' | 'writeBytes') => (job.stats?.io ?? []).reduce((total, io) => total + io[key], 0);

/** The rows for `current`, with rates against each job's reading in `previous`. Pure. */
export function topRows(previous: ReadonlyMap<string, Reading>, current: readonly Reading[]): TopRow[] {
  return current.map(({ job, atMs }) => {
    const before = previous.get(job.id);
    const seconds = before === undefined ? 0 : (atMs - before.atMs) / 1000;
    const rate = (now: number, then: number) => (seconds > 0 ? Math.max(0, now - then) / seconds : null);
    const cpu = rate(job.stats?.cpuUsageMicros ?? 0, before?.job.stats?.cpuUsageMicros ?? 0);
    const memory = job.stats?.memoryCurrentBytes ?? 0;
    const limit = job.limits.memoryBytes;
    return {
      id: job.id,
      command: commandLine(job),
      cpuPercent: cpu === null ? null : cpu / 10_000, // µs of CPU per second / 1e6 × 100
      memoryBytes: memory,
      memoryLimitBytes: limit,
      memoryPercent: limit === null || limit === 0 ? null : (memory / limit) * 100,
      pids: job.stats?.pidsCurrent ?? 0,
      ioReadBytesPerSecond: before === undefined ? null : rate(sum(job, 'readBytes'), sum(before.job, 'readBytes')),
      ioWriteBytesPerSecond: before === undefined ? null : rate(sum(job, 'writeBytes'), sum(before.job, 'writeBytes')),
    };
  });
}

export function renderTop(rows: readonly TopRow[]): string {
  const dash = (value: number | null, format: (n: number) => string) => (value === null ? '-' : format(value));
  return renderTable(
    ['ID', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS', 'DISK READ/WRITE', 'COMMAND'],
    rows.map((row) => [
      row.id,
      dash(row.cpuPercent, formatPercent),
      `${formatBytes(row.memoryBytes)} / ${row.memoryLimitBytes === null ? '-' : formatBytes(row.memoryLimitBytes)}`,
      dash(row.memoryPercent, formatPercent),
      String(row.pids),
      `${dash(row.ioReadBytesPerSecond, formatRate)} / ${dash(row.ioWriteBytesPerSecond, formatRate)}`,
      truncate(row.command, 40),
    ]),
  );
}

export class TopCommand extends ClientCommand {
  static override paths = [['top']];
  static override usage = Command.Usage({
    description: 'Show live CPU, memory and disk use of running jobs',
    details: `
      Like \`docker stats\`: reads each running job's counters every --interval and shows CPU use
      over the last interval as a percentage of one CPU (200% is two busy CPUs), memory in use
      against the job's limit, processes, and disk throughput. Refreshes in place on a terminal;
      otherwise prints one table per interval. Ctrl-C ends it. --once prints one table (measured
      over one interval) and exits.

      With --json: one line per interval, {"time":"…","jobs":[{"id","command","cpuPercent",
      "memoryBytes","memoryLimitBytes","memoryPercent","pids","ioReadBytesPerSecond",
      "ioWriteBytesPerSecond"}…]}.

      Exit status: 0 (also on Ctrl-C), 1 error, 2 usage error.
    `,
    examples: [
      ['Watch running jobs', '$0 top'],
      ['One reading over half a second, for a script', '$0 top --once --interval 500ms --json'],
    ],
  });

  once = Option.Boolean('--once', false, { description: 'print one table and exit' });
  interval = Option.String('--interval', { description: 'time between readings (default 2s)' });

  async runCommand(): Promise<number> {
    const intervalMs = this.interval === undefined ? 2000 : parseFlag('--interval', this.interval, parseDuration);
    if (intervalMs < 100) throw flagError('--interval', 'must be at least 100ms');
    const client = await this.connect();
    const stdout = this.context.stdout as NodeJS.WritableStream & { isTTY?: boolean };
    const live = stdout.isTTY === true && !this.json && !this.once;
    const stop = new AbortController();
    const onInterrupt = () => stop.abort();
    process.on('SIGINT', onInterrupt);
    try {
      let previous = new Map((await readRunning(client)).map((reading) => [reading.job.id, reading]));
      for (;;) {
        try {
          await sleep(intervalMs, undefined, { signal: stop.signal });
        } catch {
          return 0; // Ctrl-C
        }
        const current = await readRunning(client);
        const rows = topRows(previous, current);
        if (this.json) this.print(JSON.stringify({ time: new Date().toISOString(), jobs: rows }));
        else {
          const table = rows.length === 0 ? 'no running jobs\n' : renderTop(rows);
          this.print(live ? `\x1b[H\x1b[2J${table}` : `${table}${this.once ? '' : '\n'}`);
        }
        if (this.once) return 0;
        previous = new Map(current.map((reading) => [reading.job.id, reading]));
      }
    } finally {
      process.off('SIGINT', onInterrupt);
    }
  }
}

/** A live reading of every running job (the list carries final stats only, so GetJob each). */
async function readRunning(client: JobworkerClient): Promise<Reading[]> {
  const running = await client.listAllJobs({ states: ['running'] });
  const readings = await Promise.all(
    running.map(async (job) => {
      const live = await client.getJob(job.id).catch((error: unknown) => {
        if (error instanceof ClientError && error.code === StatusCode.NOT_FOUND) return undefined; // removed meanwhile
        throw error;
      });
      return live === undefined ? undefined : { job: toJobReport(live), atMs: performance.now() };
    }),
  );
  return readings.filter((reading): reading is Reading => reading !== undefined && reading.job.state === 'running');
}
