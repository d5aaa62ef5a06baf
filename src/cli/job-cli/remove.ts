import { Command, Option } from 'clipanion';

import { ClientCommand } from './client-command';

export class RemoveCommand extends ClientCommand {
  static override paths = [['rm'], ['remove']];
  static override usage = Command.Usage({
    description: 'Delete finished jobs: their records and logs',
    details: `
      Deletes each finished job's record and output log from the daemon. A running job must be
      stopped first. JOB is a job id, its first characters or the job's name; the name is free
      again once the job is removed.

      Exit status: 0 all removed, 1 error (the first failure ends the command), 2 usage error.
    `,
    examples: [
      ['Remove a job', '$0 rm 3f2a9c1e'],
      ['Remove every failed job', '$0 rm $($0 list --state failed --json | jq -r ".[].id")'],
    ],
  });

  jobs = Option.Rest({ name: 'JOB', required: 1 });

  async runCommand(): Promise<number> {
    const client = await this.connect();
    const removed: string[] = [];
    for (const text of this.jobs) {
      const id = await this.resolveJobId(client, text);
      await client.removeJob(id);
      removed.push(id);
      if (!this.json) this.print(`${id} removed`);
    }
    if (this.json) this.printJson({ removed });
    return 0;
  }
}
