import { Command, Option } from 'clipanion';

import type { IdentityUsageView } from '../../client';
import { ClientCommand } from './client-command';
import { renderTable } from './format';
import { formatBytes, formatDuration, formatPercent } from './units';

/** An identity's usage against each of its limits, as a table. Pure. */
export function renderIdentityUsage(usage: IdentityUsageView): string {
  const share = (used: number, limit: number | null): string => (limit === null || limit === 0 ? '-' : formatPercent((used / limit) * 100));
  const cell = (limit: number | null, format: (n: number) => string): string => (limit === null ? 'none' : format(limit));
  const stats = usage.stats;
  const rows: string[][] = [
    ['running jobs', String(usage.runningJobs), String(usage.maxRunningJobs), share(usage.runningJobs, usage.maxRunningJobs)],
    ['log bytes', formatBytes(usage.logBytes), formatBytes(usage.maxLogBytes), share(usage.logBytes, usage.maxLogBytes)],
    ['memory', formatBytes(stats?.memoryCurrentBytes ?? 0), cell(usage.limits.memoryBytes, formatBytes), share(stats?.memoryCurrentBytes ?? 0, usage.limits.memoryBytes)],
    ['processes', String(stats?.pidsCurrent ?? 0), cell(usage.limits.pids, String), share(stats?.pidsCurrent ?? 0, usage.limits.pids)],
    ['cpu', `${formatDuration((stats?.cpuUsageMicros ?? 0) / 1000)} used`, usage.limits.cpu === null ? 'equal share' : `${usage.limits.cpu} CPUs`, '-'],
  ];
  for (const io of usage.limits.io) {
    const rates = [
      io.readBytesPerSecond === null ? null : `read ${formatBytes(io.readBytesPerSecond)}/s`,
      io.writeBytesPerSecond === null ? null : `write ${formatBytes(io.writeBytesPerSecond)}/s`,
      io.readIops === null ? null : `read ${io.readIops} IOPS`,
      io.writeIops === null ? null : `write ${io.writeIops} IOPS`,
    ].filter((rate): rate is string => rate !== null);
    rows.push([`io ${io.device}`, '-', rates.join(', '), '-']);
  }
  return `identity ${usage.identity} (cgroup ${usage.slice})\n${renderTable(['RESOURCE', 'USED', 'LIMIT', 'USE'], rows)}`;
}

export class QuotaCommand extends ClientCommand {
  static override paths = [['quota']];
  static override usage = Command.Usage({
    description: 'Show what an identity uses of its limits',
    details: `
      Shows an identity's running jobs and log bytes on disk against the daemon's quotas, and what
      its slice (the cgroup all its jobs are in) uses of memory, processes and CPU against the
      kernel's limits. A start beyond a quota is refused with the quota named; remove finished jobs
      to free log bytes. IDENTITY defaults to yours; another identity's usage needs the admin role.

      Exit status: 0 shown, 1 error, 2 usage error.
    `,
    examples: [
      ['Your own usage', '$0 quota'],
      ['Another identity\'s (admins)', '$0 quota alice'],
      ['Log bytes left, from a script', '$0 quota --json | jq ".maxLogBytes - .logBytes"'],
    ],
  });

  identity = Option.String({ name: 'IDENTITY', required: false });

  async runCommand(): Promise<number> {
    const client = await this.connect();
    const usage = await client.getIdentityUsage(this.identity ?? '');
    if (this.json) this.printJson(usage);
    else this.print(renderIdentityUsage(usage));
    return 0;
  }
}
