import { Command } from 'clipanion';

import { toJobReport } from './job-report';
import { JobSpecCommand, LIMITS_DETAILS } from './start-request';

export class StartCommand extends JobSpecCommand {
  static override paths = [['start']];
  static override usage = Command.Usage({
    description: 'Start a job and print its id',
    details: `
      Starts COMMAND as a job under the limits given and prints the job's id (with --json, its
      whole status). The job keeps running after job-cli exits: follow it with \`job-cli stream\`,
      stop it with \`job-cli stop\`. With --name, the name works wherever the id does; it is yours
      alone until the job is removed (\`job-cli rm\`), so a second job of that name is refused.
${LIMITS_DETAILS}
      Exit status: 0 started, 1 error, 2 usage error (a bad flag value, or a limit the daemon refuses).
    `,
    examples: [
      ['Start a job', '$0 start -- sleep 60'],
      ['With limits: half a CPU, 256 MiB, 100 processes', '$0 start --cpu 0.5 --memory 256M --pids 100 -- make -j4'],
      ['With an environment and a working directory', '$0 start --env LANG=C.UTF-8 --env DEBUG=1 --cwd /srv/app -- ./build.sh'],
      ['Limit disk bandwidth on the disk that holds /var', '$0 start --io-read-bps /var=10M --io-write-bps /var=5M -- tar czf /var/tmp/etc.tgz /etc'],
      ['Limit writes to the disk of the working directory', '$0 start --cwd /var/tmp --io-write-bps 5M --io-write-iops 200 -- dd if=/dev/zero of=zeros bs=1M count=100'],
      ['Keep the id in a shell variable', 'id=$($0 start -- sh -c "echo hi; sleep 5")'],
      ['Named and labelled: then `$0 stop web`, `$0 list --label tier=frontend`', '$0 start --name web --label tier=frontend -- python3 -m http.server 8080'],
      ['On whichever daemon of the pool "batch" has room; run again once if that daemon is lost', '$0 start --pool batch --retries 1 --memory 1G -- ./nightly.sh'],
    ],
  });

  async runCommand(): Promise<number> {
    const request = this.startRequest();
    const client = await this.connect();
    const job = toJobReport(await client.startJob(request));
    if (this.json) this.printJson(job);
    else this.print(job.id);
    return 0;
  }
}
