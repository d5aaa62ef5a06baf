// `job-cli context add|use|ls|rm|show`: named daemons and their credentials (see contexts.ts).
import * as path from 'node:path';

import { Command, Option } from 'clipanion';

import { configDir, defaultClientTlsPaths } from '../../paths';
import { TlsMaterialError } from '../../client/basics';
import { CliError, EXIT_USAGE, flagError } from '../run';
import { ClientCommand, JobCliCommand } from './client-command';
import { DEFAULT_ADDRESS, normalizeAddress } from './connection';
import { checkContextName, DEFAULT_CONTEXT, readContexts, writeContexts, type ContextEntry } from './contexts';
import { renderTable } from './format';

export interface ContextView extends ContextEntry {
  name: string;
  current: boolean;
}

function defaultContextView(current: boolean): ContextView {
  const files = defaultClientTlsPaths(configDir());
  return { name: DEFAULT_CONTEXT, current, address: DEFAULT_ADDRESS, ca: files.caPath, cert: files.certificatePath, key: files.privateKeyPath };
}

const CONTEXT_DETAILS = `
      A context is a daemon's address and the credentials to reach it, under a name. Commands use
      the current context (\`context use\`), or the one named by --context or JOBWORKER_CONTEXT;
      flags (--addr --ca --cert --key) and JOBWORKER_ADDR/_CA/_CERT/_KEY still override its
      settings one by one. "default" is built in: localhost:50051 with ca.pem, cert.pem and key.pem
      of the config dir ($XDG_CONFIG_HOME/jobworker, else ~/.config/jobworker), where
      \`job-worker --dev\` installs its admin certificate. Contexts are saved in contexts.json there
      (mode 0600).
`;

export class ContextAddCommand extends JobCliCommand {
  static override paths = [['context', 'add']];
  static override usage = Command.Usage({
    category: 'Contexts',
    description: 'Save a daemon\'s address and credentials under a name',
    details: `${CONTEXT_DETAILS}
      The files are checked now (readable, a client certificate issued by the CA, not expired) and
      saved as absolute paths. --use also makes it the current context.

      Exit status: 0 saved, 1 error (e.g. a certificate problem), 2 usage error.
    `,
    examples: [
      ['Save a production host and switch to it', '$0 context add prod --addr worker1.example.com:50051 --ca ~/pki/ca.pem --cert ~/pki/alice.pem --key ~/pki/alice-key.pem --use'],
    ],
  });

  addr = Option.String('--addr', { description: 'daemon address, HOST:PORT' });
  ca = Option.String('--ca', { description: 'CA certificate (PEM)' });
  cert = Option.String('--cert', { description: 'client certificate (PEM)' });
  key = Option.String('--key', { description: 'client private key (PEM)' });
  use = Option.Boolean('--use', false, { description: 'make it the current context' });
  force = Option.Boolean('--force', false, { description: 'replace a context of that name' });
  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const problem = checkContextName(this.name);
    if (problem !== null) throw new CliError(`NAME: ${problem}`, undefined, EXIT_USAGE);
    for (const [flag, value] of [['--addr', this.addr], ['--ca', this.ca], ['--cert', this.cert], ['--key', this.key]] as const) {
      if (value === undefined) throw flagError(flag, 'is required: a context needs --addr, --ca, --cert and --key');
    }
    const entry: ContextEntry = {
      address: normalizeAddress(this.addr!, '--addr'),
      ca: path.resolve(this.ca!),
      cert: path.resolve(this.cert!),
      key: path.resolve(this.key!),
    };
    const file = readContexts(configDir());
    if (file.contexts[this.name] !== undefined && !this.force) {
      throw new CliError(`context ${this.name} already exists`, 'give --force to replace it');
    }
    try {
      // The certificate parser is loaded by the commands that check certificates, not at start-up.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { loadClientTlsMaterial } = require('../../pki/load') as typeof import('../../pki/load');
      const material = await loadClientTlsMaterial({ caPath: entry.ca, certificatePath: entry.cert, privateKeyPath: entry.key });
      for (const warning of material.warnings) this.note(`warning: ${warning}`);
    } catch (error) {
      if (error instanceof TlsMaterialError) throw new CliError(error.message, 'the context was not saved');
      throw error;
    }
    file.contexts[this.name] = entry;
    if (this.use) file.current = this.name;
    writeContexts(configDir(), file);
    const view: ContextView = { name: this.name, current: file.current === this.name, ...entry };
    if (this.json) this.printJson(view);
    else this.print(`context ${this.name} saved (${entry.address})${this.use ? ' and in use' : `; \`job-cli context use ${this.name}\` makes it the current one`}`);
    return 0;
  }
}

export class ContextUseCommand extends JobCliCommand {
  static override paths = [['context', 'use']];
  static override usage = Command.Usage({
    category: 'Contexts',
    description: 'Make a context the current one',
    details: `${CONTEXT_DETAILS}
      Exit status: 0 done, 1 error, 2 usage error (no such context).
    `,
    examples: [
      ['Use the prod context from now on', '$0 context use prod'],
      ['Back to the local dev daemon', '$0 context use default'],
    ],
  });

  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const file = readContexts(configDir());
    let view: ContextView;
    if (this.name === DEFAULT_CONTEXT) {
      delete file.current;
      view = defaultContextView(true);
    } else {
      const entry = file.contexts[this.name];
      if (entry === undefined) throw new CliError(`NAME: no context named ${JSON.stringify(this.name)}`, '`job-cli context ls` lists them', EXIT_USAGE);
      file.current = this.name;
      view = { name: this.name, current: true, ...entry };
    }
    writeContexts(configDir(), file);
    if (this.json) this.printJson(view);
    else this.print(`using context ${view.name} (${view.address})`);
    return 0;
  }
}

export class ContextListCommand extends JobCliCommand {
  static override paths = [['context', 'ls'], ['context', 'list']];
  static override usage = Command.Usage({
    category: 'Contexts',
    description: 'List contexts; * marks the current one',
    details: `${CONTEXT_DETAILS}
      With --json: an array of {"name","current","address","ca","cert","key"}.
    `,
    examples: [['List contexts', '$0 context ls']],
  });

  async run(): Promise<number> {
    const file = readContexts(configDir());
    const current = file.current ?? DEFAULT_CONTEXT;
    const views: ContextView[] = [
      defaultContextView(current === DEFAULT_CONTEXT),
      ...Object.keys(file.contexts)
        .sort()
        .map((name) => ({ name, current: name === current, ...file.contexts[name]! })),
    ];
    if (this.json) this.printJson(views);
    else this.print(renderTable(['NAME', 'ADDRESS', 'CERTIFICATE'], views.map((view) => [`${view.name}${view.current ? ' *' : ''}`, view.address, view.cert])));
    return 0;
  }
}

export class ContextRemoveCommand extends JobCliCommand {
  static override paths = [['context', 'rm']];
  static override usage = Command.Usage({
    category: 'Contexts',
    description: 'Forget a context (its files are left alone)',
    details: 'Removing the current context makes "default" current again.\n\nExit status: 0 removed, 1 error, 2 usage error (no such context).',
    examples: [['Forget the staging context', '$0 context rm staging']],
  });

  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const file = readContexts(configDir());
    if (this.name === DEFAULT_CONTEXT) throw new CliError('NAME: the default context is built in and cannot be removed', undefined, EXIT_USAGE);
    if (file.contexts[this.name] === undefined) throw new CliError(`NAME: no context named ${JSON.stringify(this.name)}`, '`job-cli context ls` lists them', EXIT_USAGE);
    delete file.contexts[this.name];
    const wasCurrent = file.current === this.name;
    if (wasCurrent) delete file.current;
    writeContexts(configDir(), file);
    if (this.json) this.printJson({ name: this.name, removed: true, current: file.current ?? DEFAULT_CONTEXT });
    else this.print(`context ${this.name} removed${wasCurrent ? '; using context default' : ''}`);
    return 0;
  }
}

export class ContextShowCommand extends ClientCommand {
  static override paths = [['context', 'show']];
  static override usage = Command.Usage({
    category: 'Contexts',
    description: 'Show which daemon and credentials a command would use, and why',
    details: `
      Resolves the connection settings exactly as other commands do (flags, then JOBWORKER_*
      variables, then the context, then the defaults) and shows each with where it came from.
      Nothing is contacted. NAME is the same as --context NAME.

      With --json: {"context","address","ca","cert","key","sources":{…}}.
    `,
    examples: [
      ['What am I talking to?', '$0 context show'],
      ['What would --context prod with another key use?', '$0 context show prod --key ./other-key.pem'],
    ],
  });

  name = Option.String({ name: 'NAME', required: false });

  async runCommand(): Promise<number> {
    const connection = this.connectionFor(this.name);
    const view = {
      context: connection.context,
      address: connection.address,
      ca: connection.tls.caPath,
      cert: connection.tls.certificatePath,
      key: connection.tls.privateKeyPath,
      sources: connection.sources,
    };
    if (this.json) this.printJson(view);
    else {
      const from = (source: string) => (source === 'default' ? '(default)' : `(from ${source})`);
      this.print(
        renderTable(
          ['SETTING', 'VALUE', 'SOURCE'],
          [
            ['context', view.context, from(view.sources.context)],
            ['address', view.address, from(view.sources.address)],
            ['ca', view.ca, from(view.sources.ca)],
            ['cert', view.cert, from(view.sources.cert)],
            ['key', view.key, from(view.sources.key)],
          ],
        ),
      );
    }
    return 0;
  }
}
