// The base of every job-cli command that talks to a daemon: the connection flags, connecting with a
// bounded wait (a health check first, so even streams fail fast when nothing answers), errors turned
// into one line with a hint, --json, and closing the connections when the command ends.
import { Option } from 'clipanion';

import type { JobworkerClient } from '../../client';
import { ClientError, StatusCode, TlsMaterialError } from '../../client/basics';
import { isJobId, isJobName } from '../../job-id';
import { configDir } from '../../paths';
import { BaseCommand, CliError, EXIT_USAGE, flagError } from '../run';
import { resolveConnection, type ResolvedConnection } from './connection';
import { readContexts } from './contexts';
import { describeCallError, describeConnectFailure, describeTlsMaterialError } from './errors';
import { parseDuration, UnitError } from './units';

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Parses a flag's value; a bad value is a usage error naming the flag (exit 2). */
export function parseFlag<T>(flag: string, value: string, parse: (text: string) => T): T {
  try {
    return parse(value);
  } catch (error) {
    if (error instanceof UnitError) throw flagError(flag, error.message);
    throw error;
  }
}

/** Options every command has: --json. */
export abstract class JobCliCommand extends BaseCommand {
  json = Option.Boolean('--json', false, { description: 'print JSON for programs instead of text for people' });

  protected print(text: string): void {
    this.context.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
  }

  protected printJson(value: unknown): void {
    this.context.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A note on stderr that is not an error ("warning: certificate expires in 3 days"). */
  protected note(text: string): void {
    this.context.stderr.write(`${this.cli.binaryName}: ${text}\n`);
  }
}

/** Commands that talk to a daemon: the connection flags, connect(), error descriptions. */
export abstract class ClientCommand extends JobCliCommand {
  addr = Option.String('--addr', { description: 'daemon address HOST:PORT (default localhost:50051; env JOBWORKER_ADDR)' });
  ca = Option.String('--ca', { description: 'CA certificate, PEM (env JOBWORKER_CA)' });
  cert = Option.String('--cert', { description: 'client certificate, PEM (env JOBWORKER_CERT)' });
  key = Option.String('--key', { description: 'client private key, PEM (env JOBWORKER_KEY)' });
  contextNames = Option.Array('--context', { description: 'use this named context (env JOBWORKER_CONTEXT)' });
  timeout = Option.String('--timeout', { description: 'how long to wait to connect and for each answer (default 10s)' });

  #clients: JobworkerClient[] = [];
  #connection: ResolvedConnection | undefined;

  /** The command's work; connections it opened are closed after it, whatever happens. */
  abstract runCommand(): Promise<number | void>;

  async run(): Promise<number | void> {
    try {
      return await this.runCommand();
    } finally {
      for (const client of this.#clients) client.close();
      this.#clients = [];
    }
  }

  protected timeoutMs(): number {
    return this.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseFlag('--timeout', this.timeout, parseDuration);
  }

  /** The one context a command uses (several are for `list`). */
  protected connectionFor(context?: string): ResolvedConnection {
    if (context === undefined && (this.contextNames?.length ?? 0) > 1) {
      throw flagError('--context', 'give one context (only `list` takes several)');
    }
    return resolveConnection({
      flags: { addr: this.addr, ca: this.ca, cert: this.cert, key: this.key, context: context ?? this.contextNames?.[0] },
      env: this.context.env,
      contexts: readContexts(configDir()),
      configDir: configDir(),
      cwd: process.cwd(),
    });
  }

  /** Loads the credentials, connects and checks the daemon answers, within --timeout. */
  protected async connect(connection: ResolvedConnection = this.connectionFor()): Promise<JobworkerClient> {
    this.#connection ??= connection;
    const timeoutMs = this.timeoutMs();
    let client: JobworkerClient;
    try {
      // gRPC and the generated code load here, once a command connects (start-up time, issue 17).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { JobworkerClient } = require('../../client/client') as typeof import('../../client/client');
      client = await JobworkerClient.connect({ address: connection.address, tls: connection.tls, callTimeoutMs: timeoutMs });
    } catch (error) {
      if (error instanceof TlsMaterialError) throw describeTlsMaterialError(error, connection);
      throw error;
    }
    this.#clients.push(client);
    for (const warning of client.warnings) this.note(`warning: ${warning}`);
    let status: string;
    try {
      status = await client.checkHealth(timeoutMs);
    } catch (error) {
      if (error instanceof ClientError) throw describeConnectFailure(error, connection, timeoutMs);
      throw error;
    }
    if (status !== 'SERVING') throw new CliError(`the daemon at ${connection.address} is not serving (${status.toLowerCase().replace('_', ' ')}); it may be shutting down`);
    return client;
  }

  protected override describeError(error: unknown): CliError | undefined {
    return this.#connection === undefined ? undefined : this.describeFor(error, this.#connection);
  }

  /** An error of a call on `connection` as the one line (and hint) to print. */
  protected describeFor(error: unknown, connection: ResolvedConnection): CliError | undefined {
    if (error instanceof CliError) return error;
    if (error instanceof ClientError) return describeCallError(error, connection);
    if (error instanceof TlsMaterialError) return describeTlsMaterialError(error, connection);
    return undefined;
  }

  /**
   * The id of the job JOB names, in docker's order: a full id; else a job name (the daemon looks it
   * up: the caller's own job of that name, or for admins the one job of another owner with it);
   * else the start of an id that matches exactly one of the jobs the caller can see.
   */
  protected async resolveJobId(client: JobworkerClient, text: string): Promise<string> {
    const id = text.trim().toLowerCase();
    if (isJobId(id)) return id;
    const idStart = /^[0-9a-f-]{1,35}$/.test(id);
    if (isJobName(text)) {
      try {
        return (await client.getJob(text)).id;
      } catch (error) {
        // Not a name in use: it may still be the start of an id.
        if (!(idStart && error instanceof ClientError && error.code === StatusCode.NOT_FOUND)) throw error;
      }
    } else if (!idStart) {
      throw new CliError(`JOB: expected a job id (a UUID, or its first characters) or a job name, got ${JSON.stringify(text)}`, undefined, EXIT_USAGE);
    }
    const matches = (await client.listAllJobs()).filter((job) => job.id.startsWith(id));
    if (matches.length === 1) return matches[0]!.id;
    if (matches.length === 0) throw new CliError(`${isJobName(text) ? `no job is named ${text} and ` : ''}no job id starts with ${id}`, '`job-cli list --all` lists the jobs you can see');
    throw new CliError(`${id} matches ${matches.length} jobs (${matches.slice(0, 3).map((job) => job.id).join(', ')}${matches.length > 3 ? ', …' : ''}); give more of the id`);
  }
}
