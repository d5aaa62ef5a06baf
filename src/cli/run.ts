// Running a clipanion CLI with the exit codes both binaries document: 0 ok, 1 error, 2 usage error.
// Errors are one line (the message, no stack trace), plus a hint line where one helps.
import { Cli, Command, UsageError, type BaseContext } from 'clipanion';

import { JobworkerError } from '../errors';

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

/** Parses (a bad command line is exit 2 with a one-line message), then runs the command. */
export async function runCli(cli: Cli<BaseContext>, args: string[], context: Partial<BaseContext> = {}, options: RunCliOptions = {}): Promise<number> {
  const stderr = context.stderr ?? process.stderr;
  let command: Command<BaseContext>;
  try {
    command = cli.process(args, context);
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    // clipanion's parse errors are multi-line with candidate commands; the first line says what is wrong,
    // unless it only announces the candidates.
    let line = text.split('\n').find((l) => l.trim() !== '')?.trim() ?? text;
    if (/^Command not found/.test(line)) line = `no command takes these arguments: ${args.join(' ')}`;
    const hint = options.parseHint?.(args);
    stderr.write(`${cli.binaryName}: ${line}\n${hint === undefined ? '' : `hint: ${hint}\n`}(run "${cli.binaryName} --help" for usage)\n`);
    return EXIT_USAGE;
  }
  return cli.run(command, context);
}
