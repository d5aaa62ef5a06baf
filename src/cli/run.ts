// Running a clipanion CLI with the exit codes both binaries document: 0 ok, 1 error, 2 usage error.
// Errors are one line (the message, no stack trace), plus a hint line where one helps.
import { Cli, Command, UsageError, type BaseContext } from 'clipanion';

import { JobworkerError } from '../errors';
import { bindNegativeValues, commandsUnder, commandTable, leadingWords, matchCommand, valueOptionNames, type CommandEntry, type CommandTable } from './command-table';
import { closestMatch } from './suggest';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** An error whose message is already what the user should read; `hint` is printed below it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = EXIT_ERROR,
  ) {
    super(message);
  }
}

/** A usage error about one flag: exit code 2. */
export function flagError(flag: string, problem: string): CliError {
  return new CliError(`${flag}: ${problem}`, undefined, EXIT_USAGE);
}

/**
 * Base of every command: subclasses implement run(); errors become one clear line on stderr and the
 * documented exit code. `describeError` lets a command family add hints (e.g. certificate problems).
 */
export abstract class BaseCommand extends Command {
  abstract run(): Promise<number | void>;

  protected describeError(_error: unknown): CliError | undefined {
    return undefined;
  }

  async execute(): Promise<number> {
    try {
      return (await this.run()) ?? EXIT_OK;
    } catch (error) {
      const name = this.cli.binaryName;
      const write = (text: string) => this.context.stderr.write(text);
      if (error instanceof UsageError) {
        write(`${name}: ${error.message}\n(run "${name} ${this.path.join(' ')} --help" for usage)\n`);
        return EXIT_USAGE;
      }
      const described = this.describeError(error) ?? (error instanceof CliError ? error : undefined);
      if (described !== undefined) {
        write(`${name}: ${described.message}\n${described.hint ? `hint: ${described.hint}\n` : ''}`);
        return described.exitCode;
      }
      if (error instanceof JobworkerError) {
        write(`${name}: ${error.message}\n`);
        return error.kind === 'invalid-argument' ? EXIT_USAGE : EXIT_ERROR;
      }
      write(`${name}: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      return EXIT_ERROR;
    }
  }
}

export interface RunCliOptions {
  /** A hint for a command line that does not parse (e.g. "put -- before the job's command"). */
  parseHint?: (args: readonly string[]) => string | undefined;
}

const HELP_FLAGS = new Set(['-h', '--help']);

/**
 * Parses (a bad command line is exit 2 with a one-line message, and a did-you-mean where a known
 * command or option is close), then runs the command. A group of commands (`pki`, `context`) with
 * --help lists its commands.
 */
export async function runCli(cli: Cli<BaseContext>, args: string[], context: Partial<BaseContext> = {}, options: RunCliOptions = {}): Promise<number> {
  const stdout = context.stdout ?? process.stdout;
  const stderr = context.stderr ?? process.stderr;
  const table = commandTable(cli);
  const group = leadingWords(args);
  const members = commandsUnder(table, group);
  if (members.length > 0 && args.slice(group.length).every((arg) => HELP_FLAGS.has(arg))) {
    const asked = args.length > group.length;
    (asked ? stdout : stderr).write(groupHelp(table, group, members, asked));
    return asked ? EXIT_OK : EXIT_USAGE;
  }
  let command: Command<BaseContext>;
  try {
    command = cli.process(bindNegativeValues(args, valueOptionNames(table)), context);
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    const hint = options.parseHint?.(args);
    stderr.write(`${cli.binaryName}: ${parseErrorLine(table, args, text)}\n${hint === undefined ? '' : `hint: ${hint}\n`}(run "${cli.binaryName} --help" for usage)\n`);
    return EXIT_USAGE;
  }
  return cli.run(command, context);
}

/**
 * clipanion's parse errors are multi-line with candidate commands; the first line says what is
 * wrong, unless it only announces the candidates. Unknown words get a did-you-mean.
 */
function parseErrorLine(table: CommandTable, args: readonly string[], text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '')?.trim() ?? text;
  const unsupported = /^Unsupported option name \("(.*)"\)/.exec(line)?.[1];
  if (unsupported !== undefined) {
    const command = matchCommand(table, args);
    const name = unsupported.replace(/=.*$/, '');
    const suggestion = closestMatch(name, command?.options.flatMap((option) => option.names) ?? []);
    const where = command === undefined || command.path.length === 0 ? '' : `${command.path.join(' ')}: `;
    return `${where}unknown option ${name}${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`;
  }
  if (/^Command not found/.test(line)) {
    const words = leadingWords(args);
    // The first word that no command path continues with is the misspelled one.
    let known = 0;
    while (known < words.length && table.commands.some((command) => command.path.length > known && words.slice(0, known + 1).every((word, i) => command.path[i] === word))) known++;
    if (known < words.length) {
      const next = new Set(table.commands.filter((command) => command.path.length > known && words.slice(0, known).every((word, i) => command.path[i] === word)).map((command) => command.path[known]!));
      const suggestion = closestMatch(words[known]!, next);
      const wrong = words.slice(0, known + 1).join(' ');
      const meant = suggestion === undefined ? '' : `; did you mean "${[table.binaryName, ...words.slice(0, known), suggestion].join(' ')}"?`;
      return `unknown command "${wrong}"${meant}`;
    }
    return `no command takes these arguments: ${args.join(' ')}`;
  }
  return line;
}

/** `job-worker pki --help`: the group's commands, one line each. */
function groupHelp(table: CommandTable, group: readonly string[], members: readonly CommandEntry[], asked: boolean): string {
  const name = [table.binaryName, ...group].join(' ');
  const rows = members.map((command) => [[table.binaryName, ...command.path].join(' '), command.description] as const);
  const width = Math.max(...rows.map(([usage]) => usage.length));
  const lines = rows.map(([usage, description]) => `  ${usage.padEnd(width)}  ${description}`);
  const head = asked ? `${name}: one of these commands` : `${name} needs one of these commands`;
  return `${head}\n\n${lines.join('\n')}\n\nRun "${[table.binaryName, ...members[0]!.path].join(' ')} --help" (or any of them with --help) for its options and examples.\n`;
}
