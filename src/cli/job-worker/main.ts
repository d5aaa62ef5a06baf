// Entry point of bin/job-worker.
import { Builtins, Cli } from 'clipanion';

import { runCli } from '../run';
import { PkiCaCommand, PkiClientCommand, PkiNatsClientCommand, PkiServerCommand } from './pki';
import { ServeCommand } from './serve';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../../../package.json') as { version: string };

export function createWorkerCli(): Cli {
  const cli = new Cli({ binaryName: 'job-worker', binaryLabel: 'jobworker daemon', binaryVersion: version, enableColors: process.stdout.isTTY === true });
  cli.register(ServeCommand);
  cli.register(PkiCaCommand);
  cli.register(PkiServerCommand);
  cli.register(PkiClientCommand);
  cli.register(PkiNatsClientCommand);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  return cli;
}

export async function main(args: string[]): Promise<void> {
  process.exitCode = await runCli(createWorkerCli(), args);
}
