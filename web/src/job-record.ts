// A job's record as a list of facts: how it ended (exit code, signal, OOM kill, who stopped it), what
// it runs and as whom, its times, the limits in force, its log and final resource use — and any
// field a newer daemon sends that this page does not know, shown as it is.
import type { UiJob } from '../../src/cli/ui/protocol';
import { h } from './dom';
import { averageCpuPercent, commandLine, formatAgo, formatBytes, formatDuration, formatIsolation, formatLabels, formatLimits, formatPercent, formatUser, poolLine } from './format';

const KNOWN = new Set(['id', 'name', 'labels', 'owner', 'command', 'args', 'argsOmitted', 'cwd', 'user', 'isolation', 'state', 'pid', 'exitCode', 'signal', 'oomKilled', 'stoppedBy', 'reason', 'createdAt', 'startedAt', 'finishedAt', 'durationMs', 'limits', 'log', 'stats', 'pool']);

const time = (iso: string | null, now: Date) => (iso === null ? '-' : `${new Date(iso).toLocaleString()} (${formatAgo(new Date(iso), now)})`);

function valueText(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return JSON.stringify(value, null, 1).replace(/\n\s*/g, ' ');
  return String(value);
}

export function renderRecord(job: UiJob, now: Date): HTMLElement {
  const rows: [string, string | HTMLElement, string?][] = [];
  if (job.name !== null) rows.push(['Name', job.name, 'name']);
  if (Object.keys(job.labels).length > 0) rows.push(['Labels', h('code', {}, formatLabels(job.labels)), 'labels']);
  if (job.reason !== null) rows.push(['Result', job.reason, 'result']);
  if (job.pool !== null) rows.push(['Pool', poolLine(job.pool), 'pool']);
  rows.push(['Exit code', job.exitCode === null ? '-' : String(job.exitCode), 'exit-code']);
  rows.push(['Signal', job.signal ?? '-', 'signal']);
  rows.push(['OOM killed', job.oomKilled ? 'yes: the kernel killed a process of the job for going over its memory limit' : 'no', 'oom']);
  rows.push(['Stopped by', job.stoppedBy ?? '-', 'stopped-by']);
  rows.push(['Command', h('code', {}, commandLine(job)), 'command']);
  rows.push(['Owner', job.owner, 'owner']);
  rows.push(['Runs as', formatUser(job.user), 'user']);
  rows.push(['Isolation', formatIsolation(job.isolation), 'isolation']);
  rows.push(['Directory', job.cwd === '' ? '/' : job.cwd, 'cwd']);
  rows.push(['Process', job.pid === null ? '-' : `pid ${job.pid}`, 'pid']);
  rows.push(['Created', time(job.createdAt, now)], ['Started', time(job.startedAt, now)], ['Finished', time(job.finishedAt, now)]);
  rows.push(['Duration', job.durationMs === null ? '-' : formatDuration(job.durationMs), 'duration']);
  rows.push(['Limits in force', formatLimits(job.limits), 'limits']);
  const stats = job.stats;
  if (stats !== null) {
    const average = averageCpuPercent(job);
    rows.push(['CPU time', `${formatDuration(stats.cpuUsageMicros / 1000)} (user ${formatDuration(stats.cpuUserMicros / 1000)}, system ${formatDuration(stats.cpuSystemMicros / 1000)})${average === null ? '' : `, ${formatPercent(average)} of one CPU on average`}`, 'cpu']);
    if (stats.cpuThrottledPeriods > 0) rows.push(['CPU throttled', `${stats.cpuThrottledPeriods} times, ${formatDuration(stats.cpuThrottledMicros / 1000)} in all`]);
    rows.push(['Memory', `${formatBytes(stats.memoryCurrentBytes)} now${stats.memoryPeakBytes === null ? '' : `, ${formatBytes(stats.memoryPeakBytes)} peak`}${stats.oomKills > 0 ? `, ${stats.oomKills} OOM kill${stats.oomKills === 1 ? '' : 's'}` : ''}`, 'memory']);
    for (const io of stats.io) rows.push([`Disk ${io.device}`, `read ${formatBytes(io.readBytes)}, written ${formatBytes(io.writeBytes)}; ${io.readOps} reads, ${io.writeOps} writes`]);
  }
  const log = job.log;
  rows.push(['Log', `${formatBytes(log.sizeBytes)}${log.truncated ? ', truncated at the size cap' : ''}${log.droppedBytes > 0 ? `, ${formatBytes(log.droppedBytes)} dropped` : ''}${log.writeError === null ? '' : ` (write error ${log.writeError})`}`, 'log']);
  for (const [key, value] of Object.entries(job)) if (!KNOWN.has(key)) rows.push([key, valueText(value), key]);
  return h('dl', { class: 'record' }, rows.flatMap(([label, value, field]) => [h('dt', {}, label), h('dd', { 'data-field': field ?? null }, value)]));
}
