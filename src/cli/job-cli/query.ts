import { Command, Option } from 'clipanion';

import { ClientCommand } from './client-command';
import { renderJobDetails } from './format';
import { toJobReport } from './job-report';

export class QueryCommand extends ClientCommand {
  static override paths = [['query'], ['status']];
  static override usage = Command.Usage({
    description: 'Show a job\'s status and resource use',
    details: `
      Shows the job's state, how it ended (exit code, signal, OOM kill, who stopped it), its times,
      its limits, and its resource use: live while it runs, the final reading once it finished.
      CPU is shown as time and as a percentage of one CPU averaged over the run, memory in MiB,
      disk IO in bytes and MB/s. JOB is a job id, its first characters or the job's name. \`status\` is
      an alias.

      Exit status: 0 shown, 1 error (e.g. no such job), 2 usage error.
    `,
    examples: [
      ['Show a job', '$0 query 3f2a9c1e'],
      ['Its state, from a script', '$0 status --json 3f2a9c1e | jq -r .state'],
    ],
  });

  job = Option.String({ name: 'JOB' });

  async runCommand(): Promise<number> {
    const client = await this.connect();
    const id = await this.resolveJobId(client, this.job);
    const now = new Date();
    const job = toJobReport(await client.getJob(id), now);
    if (this.json) this.printJson(job);
    else this.print(renderJobDetails(job, now));
    return 0;
  }
}
