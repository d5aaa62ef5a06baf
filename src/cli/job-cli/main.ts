// Entry point of bin/job-cli.
import { Builtins, Cli } from 'clipanion';

import { commandsNamedBy } from '../command-table';
import { runCli } from '../run';
import { CompletionCommand } from './completion';
import { EventsCommand } from './events';
import { handedOff } from './log-output';
import { ContextAddCommand, ContextListCommand, ContextRemoveCommand, ContextShowCommand, ContextUseCommand } from './context';
import { ListCommand } from './list';
import { QueryCommand } from './query';
import { QuotaCommand } from './quota';
import { RemoveCommand } from './remove';
import { RunCommand } from './run';
import { StartCommand } from './start';
import { StopCommand } from './stop';
import { StreamCommand } from './stream';
import { TopCommand } from './top';
import { UiCommand } from './ui';
import { WaitCommand } from './wait';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../../../package.json') as { version: string };

/** Every command of job-cli, in the order --help lists them. */
export const JOB_CLI_COMMANDS = [
  RunCommand,
  StartCommand,
  StopCommand,
  QueryCommand,
  StreamCommand,
  ListCommand,
  TopCommand,
  RemoveCommand,
  WaitCommand,
  EventsCommand,
  QuotaCommand,
  UiCommand,
  ContextAddCommand,
  ContextUseCommand,
  ContextListCommand,
  ContextRemoveCommand,
  ContextShowCommand,
  CompletionCommand,
];

/** The CLI with every command, or, given a command line, with only the commands it can be for. */
export function createJobCli(args?: readonly string[]): Cli {
  const cli = new Cli({ binaryName: 'job-cli', binaryLabel: 'jobworker command-line client', binaryVersion: version, enableColors: process.stdout.isTTY === true });
  const commands = args === undefined ? JOB_CLI_COMMANDS : commandsNamedBy(JOB_CLI_COMMANDS, args);
  for (const command of commands) cli.register(command);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  return cli;
}

/**
 * grpc-js sends the dialled host as the TLS server name; when that is an IP address (--addr
 * 10.0.0.5:50051, valid when the server certificate lists the IP), Node warns once with DEP0123,
 * which the user can do nothing about. Only that warning is dropped; others print as usual.
 */
function dropIpServerNameWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    if (warning.code === 'DEP0123') return;
    for (const print of printers) print(warning);
  });
}

/** `job-cli start ls -la`: the job's own options need a "--" before the command. */
function parseHint(args: readonly string[]): string | undefined {
  if ((args[0] === 'start' || args[0] === 'run') && !args.includes('--')) {
    return `put "--" before the job's command: job-cli ${args[0]} [flags] -- COMMAND [ARGS...]`;
  }
  return undefined;
}

export async function main(args: string[]): Promise<void> {
  dropIpServerNameWarning();
  const code = await runCli(createJobCli(args), args, {}, { parseHint });
  // Exit once our output is out, rather than when the event loop empties: a connection attempt
  // that never completed (a server that accepts and never answers) can keep grpc-js's socket
  // open after the channel is closed, and the command's answer is already given.
  await Promise.all([handedOff(process.stdout), handedOff(process.stderr)]);
  process.exit(code);
}
