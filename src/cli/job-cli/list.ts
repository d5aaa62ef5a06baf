import { Command, Option } from 'clipanion';

import { configDir } from '../../paths';
import { CliError, flagError } from '../run';
import { ClientCommand } from './client-command';
import { resolveConnection, type ResolvedConnection } from './connection';
import { everyContextName, readContexts } from './contexts';
import { renderJobTable } from './format';
import type { JobStateName } from '../../client';
import { toJobReport, type JobReport } from './job-report';
import { parseStates, STATE_FLAG_DESCRIPTION } from './states';

export class ListCommand extends ClientCommand {
  static override paths = [['list'], ['ls']];
  static override usage = Command.Usage({
    description: 'List jobs',
    details: `
      Lists the jobs you can see (admins: everyone's), oldest first: running and starting ones,
      or those in the states given with --state, or all with --all. \`ls\` is an alias.
      --name lists the job with that name (admins: each owner's); --label KEY=VALUE the jobs that
      have that label with that value, --label KEY those that have it at all (repeatable: every
      one must match).

      Several hosts: --context may be given more than once, or --all-contexts lists every saved
      context (and "default" when its credentials exist); a HOST column names the context. The
      contexts are used as saved: --addr/--ca/--cert/--key and JOBWORKER_* do not apply then. A
      host that cannot be reached is reported on stderr and the others are still listed (exit 1).

      With --json: an array of jobs as \`query --json\` shows them (with "context" when listing
      several hosts). Resource use in a list is each job's final reading (use query or top for live).

      Exit status: 0 listed, 1 error (any host), 2 usage error.
    `,
    examples: [
      ['Running jobs', '$0 list'],
      ['All jobs, finished ones too', '$0 list --all'],
      ['Failed and stopped jobs', '$0 list --state failed --state stopped'],
      ['Jobs labelled tier=web that have a "team" label, in any state', '$0 list --all --label tier=web --label team'],
      ['Running jobs on two hosts', '$0 list --context worker1 --context worker2'],
      ['Every job on every host, for a program', '$0 list --all --all-contexts --json'],
    ],
  });

  states = Option.Array('--state', { description: `only jobs in this state ${STATE_FLAG_DESCRIPTION}` });
  all = Option.Boolean('--all', false, { description: 'jobs in every state' });
  owner = Option.String('--owner', { description: 'only jobs of this identity (admins; others only ever see their own)' });
  name = Option.String('--name', { description: 'only the jobs with this name' });
  labels = Option.Array('--label', { description: 'only jobs with this label: KEY=VALUE, or KEY with any value (repeatable; all must match)' });
  allContexts = Option.Boolean('--all-contexts', false, { description: 'list on every saved context, with a HOST column' });

  async runCommand(): Promise<number> {
    const states = this.selectedStates();
    const request = {
      states,
      ...(this.owner === undefined ? {} : { owner: this.owner }),
      ...(this.name === undefined ? {} : { name: this.name }),
      ...(this.labels === undefined ? {} : { labels: this.labels }),
    };
    const names = this.contextsToList();
    if (names === null) {
      const client = await this.connect();
      const now = new Date();
      const jobs = (await client.listAllJobs(request)).map((job) => toJobReport(job, now));
      if (this.json) this.printJson(jobs);
      else if (jobs.length === 0) this.note(this.all ? 'no jobs' : `no ${states.join(' or ')} jobs${this.states === undefined ? ' (--all lists every job)' : ''}`);
      else this.print(renderJobTable(jobs, now));
      return 0;
    }

    const results = await Promise.all(
      names.map(async (name) => {
        let connection: ResolvedConnection | undefined;
        try {
          connection = resolveConnection({ flags: { context: name }, env: {}, contexts: readContexts(configDir()), configDir: configDir(), cwd: process.cwd() });
          const client = await this.connect(connection);
          const now = new Date();
          return { name, jobs: (await client.listAllJobs(request)).map((job) => ({ ...toJobReport(job, now), context: name })) };
        } catch (error) {
          const described = (connection === undefined ? undefined : this.describeFor(error, connection)) ?? (error instanceof Error ? error : new Error(String(error)));
          const where = connection === undefined ? name : `${name} (${connection.address})`;
          this.note(`context ${where}: ${described.message}`);
          return { name, jobs: null };
        }
      }),
    );
    const jobs: (JobReport & { context: string })[] = results
      .flatMap((result) => result.jobs ?? [])
      .sort((a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? ''));
    if (this.json) this.printJson(jobs);
    else if (jobs.length > 0) this.print(renderJobTable(jobs, new Date(), true));
    else this.note('no jobs');
    return results.some((result) => result.jobs === null) ? 1 : 0;
  }

  private selectedStates(): JobStateName[] {
    const given = parseStates(this.states);
    if (this.all && given.length > 0) throw flagError('--all', 'lists every state; it cannot be combined with --state');
    if (this.all) return [];
    return given.length > 0 ? given : ['starting', 'running'];
  }

  /** null: one host, resolved the usual way. */
  private contextsToList(): string[] | null {
    const several = this.allContexts || (this.contextNames?.length ?? 0) > 1;
    if (!several) return null;
    for (const [flag, value] of [['--addr', this.addr], ['--ca', this.ca], ['--cert', this.cert], ['--key', this.key]] as const) {
      if (value !== undefined) throw flagError(flag, 'cannot be combined with several contexts (each uses its own)');
    }
    if (!this.allContexts) return [...new Set(this.contextNames)];
    if (this.contextNames !== undefined) throw flagError('--all-contexts', 'cannot be combined with --context');
    const withDefault = everyContextName(configDir(), readContexts(configDir()));
    if (withDefault.length === 0) throw new CliError('no contexts to list', '`job-cli context add` saves one');
    return withDefault;
  }
}
