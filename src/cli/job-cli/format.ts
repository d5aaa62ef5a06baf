// Text for people, from the same views --json prints: tables, a job's details, command lines. Pure.
import type { IsolationView, JobUserView } from '../../client/views';
import type { JobReport } from './job-report';
import { formatAgo, formatBytes, formatDuration, formatPercent, formatRate } from './units';

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** A command line a POSIX shell would read back as the same words. */
export function shellQuote(words: readonly string[]): string {
  return words.map((word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Shortens to `max` characters with an ellipsis. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** The EXIT column: the code, the signal, or "-" while running. */
export function exitCell(job: JobReport): string {
  if (job.exitCode !== null) return String(job.exitCode);
  if (job.signal !== null) return job.oomKilled ? `${job.signal} (OOM)` : job.signal;
  return '-';
}

export function commandLine(job: Pick<JobReport, 'command' | 'args'> & Partial<Pick<JobReport, 'argsOmitted'>>): string {
  const omitted = job.argsOmitted ?? 0;
  return shellQuote([job.command, ...job.args]) + (omitted > 0 ? ` … (${omitted} more argument${omitted === 1 ? '' : 's'})` : '');
}

export function formatLimits(limits: JobReport['limits']): string {
  const parts: string[] = [];
  if (limits.cpu !== null) parts.push(`cpu ${limits.cpu}`);
  if (limits.cpuWeight !== null) parts.push(`cpu weight ${limits.cpuWeight}`);
  if (limits.memoryBytes !== null) parts.push(`memory ${formatBytes(limits.memoryBytes)}`);
  if (limits.memoryHighBytes !== null) parts.push(`memory high ${formatBytes(limits.memoryHighBytes)}`);
  if (limits.pids !== null) parts.push(`pids ${limits.pids}`);
  for (const io of limits.io) {
    const device = io.device === '' ? 'working dir disk' : io.device;
    if (io.readBytesPerSecond !== null) parts.push(`${device} read ${formatBytes(io.readBytesPerSecond)}/s`);
    if (io.writeBytesPerSecond !== null) parts.push(`${device} write ${formatBytes(io.writeBytesPerSecond)}/s`);
    if (io.readIops !== null) parts.push(`${device} read ${io.readIops} IOPS`);
    if (io.writeIops !== null) parts.push(`${device} write ${io.writeIops} IOPS`);
  }
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** CPU use averaged over the job's run, as a percentage of one CPU; null before it started. */
export function averageCpuPercent(job: JobReport): number | null {
  if (job.stats === null || job.durationMs === null || job.durationMs <= 0) return null;
  return (job.stats.cpuUsageMicros / 1000 / job.durationMs) * 100;
}

export function poolLine(pool: NonNullable<JobReport['pool']>): string {
  const where = pool.runnerHost === null ? 'queued' : `on ${pool.runnerHost} (${pool.runnerAddress ?? '?'})`;
  const retries = pool.retries === 0 ? '' : `, retries ${pool.retries}`;
  return `${pool.name}, ${where}, attempt ${pool.attempts}${retries}`;
}

function time(iso: string | null, now: Date): string {
  return iso === null ? '-' : `${iso} (${formatAgo(new Date(iso), now)})`;
}

const USER_KINDS: Record<JobUserView['kind'], string> = {
  dynamic: 'a dynamic uid of its own',
  mapped: "its owner's configured user",
  requested: 'asked for by an admin',
  unknown: 'chosen in a way this job-cli does not know',
};

/** "alice (uid 1000, gid 1000, groups 1000 27): its owner's configured user" */
export function formatUser(user: JobUserView | null): string {
  if (user === null) return '- (not settled yet)';
  const ids = `uid ${user.uid}, gid ${user.gid}${user.groups.length === 0 ? ', no groups' : `, groups ${user.groups.join(' ')}`}`;
  return `${user.name === null ? ids : `${user.name} (${ids})`}: ${USER_KINDS[user.kind]}`;
}

/** "namespaces pid mount cgroup ipc uts; network host; read-only root; mounts /srv:/data (ro)" */
export function formatIsolation(isolation: IsolationView): string {
  const parts = [
    `own namespaces: ${isolation.namespaces.length === 0 ? 'none' : isolation.namespaces.join(' ')}`,
    `network ${isolation.network === 'none' ? 'none (loopback only)' : 'host'}`,
    isolation.readOnlyRoot ? 'read-only root' : 'writable root',
  ];
  if (isolation.mounts.length > 0) parts.push(`mounts ${isolation.mounts.map((m) => `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`).join(' ')}`);
  return parts.join('; ');
}

/** `tier=web 'note=a b'`: each label as the --label argument that gives it, as a shell reads it back. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return shellQuote(Object.entries(labels).map(([key, value]) => `${key}=${value}`));
}

/** `query`: one "Label  value" line per fact. */
export function renderJobDetails(job: JobReport, now: Date): string {
  const rows: [string, string][] = [['ID', job.id]];
  if (job.name !== null) rows.push(['Name', job.name]);
  if (Object.keys(job.labels).length > 0) rows.push(['Labels', formatLabels(job.labels)]);
  rows.push(
    ['State', job.state === 'running' && job.pid !== null ? `running (pid ${job.pid})` : job.state],
  );
  if (job.reason !== null) rows.push(['Result', job.reason]);
  if (job.pool !== null) rows.push(['Pool', poolLine(job.pool)]);
  if (job.oomKilled) rows.push(['OOM', 'the kernel killed a process of the job for exceeding its memory limit']);
  rows.push(
    ['Command', commandLine(job)],
    ['Owner', job.owner],
    ['Directory', job.cwd],
    ['User', formatUser(job.user)],
    ['Isolation', formatIsolation(job.isolation)],
    ['Created', time(job.createdAt, now)],
    ['Started', time(job.startedAt, now)],
    ['Finished', time(job.finishedAt, now)],
    ['Duration', job.durationMs === null ? '-' : formatDuration(job.durationMs)],
    ['Limits', formatLimits(job.limits)],
  );
  if (job.maxRuntimeMs !== null) rows.push(['Max runtime', `${formatDuration(job.maxRuntimeMs)}${job.timedOut ? ' (reached: it timed out)' : ''}`]);
  const stats = job.stats;
  if (stats !== null) {
    const average = averageCpuPercent(job);
    let cpu = `${formatDuration(stats.cpuUsageMicros / 1000)} (user ${formatDuration(stats.cpuUserMicros / 1000)}, system ${formatDuration(stats.cpuSystemMicros / 1000)})`;
    if (average !== null) cpu += `, ${formatPercent(average)} of one CPU on average`;
    if (stats.cpuThrottledPeriods > 0) cpu += `; throttled ${stats.cpuThrottledPeriods} times for ${formatDuration(stats.cpuThrottledMicros / 1000)}`;
    rows.push(['CPU', cpu]);
    const memory: string[] = [];
    if (job.state === 'running' || job.state === 'starting') memory.push(`${formatBytes(stats.memoryCurrentBytes)} now`);
    if (stats.memoryPeakBytes !== null) memory.push(`${formatBytes(stats.memoryPeakBytes)} peak`);
    if (stats.oomKills > 0) memory.push(`${stats.oomKills} OOM kill${stats.oomKills === 1 ? '' : 's'}`);
    rows.push(['Memory', memory.length === 0 ? '-' : memory.join(', ')]);
    if (job.state === 'running') rows.push(['Processes', String(stats.pidsCurrent)]);
    const seconds = job.durationMs === null || job.durationMs <= 0 ? null : job.durationMs / 1000;
    const rate = (bytes: number) => (seconds === null ? '' : ` (${formatRate(bytes / seconds)} on average)`);
    for (const io of stats.io) {
      rows.push([`IO ${io.device}`, `read ${formatBytes(io.readBytes)}${rate(io.readBytes)}, written ${formatBytes(io.writeBytes)}${rate(io.writeBytes)}; ${io.readOps} reads, ${io.writeOps} writes`]);
    }
  }
  let output = formatBytes(job.log.sizeBytes); // the log file: output plus a small header per record
  if (job.log.truncated) output += ', truncated at the size cap';
  if (job.log.droppedBytes > 0) output += `, ${formatBytes(job.log.droppedBytes)} dropped`;
  if (job.log.writeError !== null) output += ` (write error ${job.log.writeError})`;
  rows.push(['Log', output]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n') + '\n';
}

/** `list`: the table; `hosts` adds a HOST column first. */
export function renderJobTable(jobs: readonly (JobReport & { context?: string })[], now: Date, hosts = false): string {
  const headers = [...(hosts ? ['HOST'] : []), 'ID', 'NAME', 'STATE', 'EXIT', 'CREATED', 'DURATION', 'OWNER', 'COMMAND'];
  const rows = jobs.map((job) => [
    ...(hosts ? [job.context ?? ''] : []),
    job.id,
    job.name ?? '-',
    job.state,
    exitCell(job),
    job.createdAt === null ? '-' : formatAgo(new Date(job.createdAt), now),
    job.durationMs === null ? '-' : formatDuration(job.durationMs),
    job.owner,
    truncate(commandLine(job), 48),
  ]);
  return renderTable(headers, rows);
}
