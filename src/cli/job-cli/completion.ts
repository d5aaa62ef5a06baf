// `job-cli completion bash|zsh|fish`: the shell's completion script, generated from job-cli's own
// command definitions (../completion.ts), so it never lists commands or flags by hand.
import { Command, Option } from 'clipanion';

import { commandTable, type CommandClassPaths } from '../command-table';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from '../completion';
import { BaseCommand, flagError } from '../run';

export class CompletionCommand extends BaseCommand {
  static override paths = [['completion']];
  static override usage = Command.Usage({
    description: 'Print a shell completion script (bash, zsh or fish)',
    details: `
      Prints the script that makes SHELL complete job-cli's commands and their flags (with their
      descriptions in zsh and fish); option values and the job's own command after "--" complete
      as file names. It is generated from job-cli's command definitions, so it matches this
      version of job-cli: load it again after an upgrade.

      Exit status: 0 printed, 2 usage error (an unknown SHELL).
    `,
    examples: [
      ['bash, for this shell', 'source <($0 completion bash)'],
      ['bash, for every new shell', '$0 completion bash > ~/.local/share/bash-completion/completions/job-cli'],
      ['zsh (after compinit)', 'source <($0 completion zsh)'],
      ['fish', '$0 completion fish > ~/.config/fish/completions/job-cli.fish'],
    ],
  });

  shell = Option.String({ name: 'SHELL' });

  async run(): Promise<number> {
    if (!(COMPLETION_SHELLS as readonly string[]).includes(this.shell)) {
      throw flagError('SHELL', `expected ${COMPLETION_SHELLS.join(', ')}, got ${JSON.stringify(this.shell)}`);
    }
    // The CLI with every command: this run registered only the ones its command line names. The
    // classes give the aliases (`ls`), which clipanion's definitions leave out.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createJobCli, JOB_CLI_COMMANDS } = require('./main') as typeof import('./main');
    this.context.stdout.write(completionScript(commandTable(createJobCli(), JOB_CLI_COMMANDS as readonly CommandClassPaths[]), this.shell as CompletionShell));
    return 0;
  }
}
