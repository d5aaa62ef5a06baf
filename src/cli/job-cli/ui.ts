import { existsSync } from 'node:fs';

import { Command, Option } from 'clipanion';

import { configDir } from '../../paths';
import { flagError } from '../run';
import { ClientCommand } from './client-command';
import { resolveConnection, type ResolvedConnection } from './connection';
import { DEFAULT_CONTEXT, everyContextName, readContexts } from './contexts';

export class UiCommand extends ClientCommand {
  static override paths = [['ui']];
  static override usage = Command.Usage({
    description: 'Serve a web dashboard of every daemon on this machine\'s loopback',
    details: `
      Serves a web page, on 127.0.0.1 and a free port unless --listen says otherwise, that shows
      the jobs of every daemon (each context), live: their state and resource use, a job's record,
      charts of its CPU, memory, disk and processes, and its output in a terminal view. Writers and
      admins can start, stop and remove jobs from it.

      It prints a URL carrying a random access token (and opens it when there is a desktop, unless
      --no-open): the token is what lets a browser in, so keep it private. The page talks to this
      process only; this process talks to the daemons with your certificates, as job-cli does, so
      the daemons decide what you may see and do.

      Which daemons: the one job-cli would use (flags, JOBWORKER_*, the current context) and every
      other saved context; with --context (repeatable), only those. A daemon that cannot be reached
      is shown as down and tried again; the others keep working.

      With --json: one line, {"url":…,"hosts":[{"context","address"}]}, once it serves.

      Runs until Ctrl-C (exit 0). Exit status: 1 error (e.g. the address is in use), 2 usage error.
    `,
    examples: [
      ['Serve every context on a free loopback port', '$0 ui'],
      ['A fixed port, without opening a browser', '$0 ui --listen 127.0.0.1:8080 --no-open'],
      ['Only two daemons', '$0 ui --context worker1 --context worker2'],
    ],
  });

  listen = Option.String('--listen', { description: 'address to serve on, HOST:PORT (default 127.0.0.1:0: loopback, a free port)' });
  allowRemote = Option.Boolean('--allow-remote', false, { description: 'allow --listen on an address other machines can reach (plain HTTP: the token crosses the network)' });
  open = Option.Boolean('--open', { description: 'open the page in a browser (default: when there is a desktop; --no-open never)' });

  async runCommand(): Promise<number> {
    // The server's modules (http, ws…) load only for this command: the others start as fast as before.
    const { parseListenAddress, isLoopback } = require('../ui/listen-address') as typeof import('../ui/listen-address');
    const listen = parseListenAddress(this.listen ?? '127.0.0.1:0');
    if (typeof listen === 'string') throw flagError('--listen', listen);
    if (!isLoopback(listen.host) && !this.allowRemote) {
      throw flagError('--listen', `${listen.host} is not a loopback address; add --allow-remote to serve other machines (the page is plain HTTP: the token and everything shown cross the network unencrypted)`);
    }
    const hosts = this.daemons();
    const { runUi } = require('../ui/run-ui') as typeof import('../ui/run-ui');
    return runUi({
      listen,
      hosts,
      timeoutMs: this.timeoutMs(),
      open: this.open,
      json: this.json,
      print: (text: string) => this.print(text),
      note: (text: string) => this.note(text),
    });
  }

  /** The daemons to show, by context name. */
  private daemons(): { name: string; connection: ResolvedConnection }[] {
    const asSaved = (name: string) => resolveConnection({ flags: { context: name }, env: {}, contexts: readContexts(configDir()), configDir: configDir(), cwd: process.cwd() });
    const named = [...new Set(this.contextNames ?? [])];
    if (named.length > 1) {
      for (const [flag, value] of [['--addr', this.addr], ['--ca', this.ca], ['--cert', this.cert], ['--key', this.key]] as const) {
        if (value !== undefined) throw flagError(flag, 'cannot be combined with several contexts (each uses its own)');
      }
      return named.map((name) => ({ name, connection: asSaved(name) }));
    }
    const current = this.connectionFor();
    if (named.length === 1) return [{ name: current.context, connection: current }];
    const others = everyContextName(configDir(), readContexts(configDir())).filter((name) => name !== current.context);
    // The implicit default without credentials is no daemon of the user's when others are saved.
    const implicitDefault = current.context === DEFAULT_CONTEXT && Object.values(current.sources).every((source) => source === 'default');
    const skipCurrent = implicitDefault && !existsSync(current.tls.certificatePath) && others.length > 0;
    return [...(skipCurrent ? [] : [{ name: current.context, connection: current }]), ...others.map((name) => ({ name, connection: asSaved(name) }))];
  }
}
