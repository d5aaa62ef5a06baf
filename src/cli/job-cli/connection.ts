// Which daemon to talk to and with which credentials. Each setting (address, CA, certificate, key)
// is taken from the first of: a flag (--addr --ca --cert --key), the environment (JOBWORKER_ADDR
// JOBWORKER_CA JOBWORKER_CERT JOBWORKER_KEY), the selected context (--context, else
// JOBWORKER_CONTEXT, else the current one), the defaults (localhost:50051 and the config dir's
// ca.pem, cert.pem, key.pem). Pure: the caller passes the environment and the contexts file.
import * as path from 'node:path';

import { DEFAULT_LISTEN, defaultClientTlsPaths } from '../../paths';
import type { TlsFilePaths } from '../../pki/load';
import { CliError, EXIT_USAGE } from '../run';
import { DEFAULT_CONTEXT, type ContextsFile } from './contexts';

const DEFAULT_PORT = Number(DEFAULT_LISTEN.slice(DEFAULT_LISTEN.lastIndexOf(':') + 1));
/**
 * The dev daemon listens on 127.0.0.1; its certificate also names localhost. We dial the name:
 * grpc-js sends the dialled host as the TLS server name, and Node warns (DEP0123) when that is an IP.
 */
export const DEFAULT_ADDRESS = `localhost:${DEFAULT_PORT}`;

export const ENV = {
  address: 'JOBWORKER_ADDR',
  ca: 'JOBWORKER_CA',
  cert: 'JOBWORKER_CERT',
  key: 'JOBWORKER_KEY',
  context: 'JOBWORKER_CONTEXT',
} as const;

const FLAGS = { address: '--addr', ca: '--ca', cert: '--cert', key: '--key', context: '--context' } as const;

export interface ConnectionFlags {
  addr?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  context?: string | undefined;
}

export interface ConnectionInputs {
  flags: ConnectionFlags;
  env: Readonly<Record<string, string | undefined>>;
  contexts: ContextsFile;
  configDir: string;
  /** Relative paths in flags and the environment are relative to this. */
  cwd: string;
}

export interface ResolvedConnection {
  /** The context in effect ("default" when none is defined or chosen). */
  context: string;
  address: string;
  tls: TlsFilePaths;
  /** Where each setting came from: "--addr", "JOBWORKER_CA", "context prod", "default". */
  sources: { context: string; address: string; ca: string; cert: string; key: string };
}

/** "host:port", "[v6]:port"; a missing port is the default one. Throws a usage error naming `source`. */
export function normalizeAddress(text: string, source: string): string {
  const value = text.trim();
  const bad = (why: string) =>
    new CliError(`${source}: ${why}, got ${JSON.stringify(text)}`, 'write HOST:PORT, e.g. localhost:50051 or [::1]:50051', EXIT_USAGE);
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/]+)(?::(\d{1,5}))?$/.exec(value);
  if (match === null) {
    if (/^[0-9A-Fa-f:]+$/.test(value) && value.includes('::')) throw bad('an IPv6 address needs brackets');
    throw bad('expected HOST:PORT');
  }
  const port = match[2] === undefined ? DEFAULT_PORT : Number(match[2]);
  if (port < 1 || port > 65535) throw bad('the port must be from 1 to 65535');
  return `${match[1]}:${port}`;
}

export function resolveConnection(inputs: ConnectionInputs): ResolvedConnection {
  const { flags, env, contexts } = inputs;
  const envValue = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);

  let context = DEFAULT_CONTEXT;
  let contextSource = 'default';
  if (flags.context !== undefined) [context, contextSource] = [flags.context, FLAGS.context];
  else if (envValue(ENV.context) !== undefined) [context, contextSource] = [envValue(ENV.context)!, ENV.context];
  else if (contexts.current !== undefined) [context, contextSource] = [contexts.current, 'the current context'];
  const entry = context === DEFAULT_CONTEXT ? undefined : contexts.contexts[context];
  if (context !== DEFAULT_CONTEXT && entry === undefined) {
    const known = Object.keys(contexts.contexts).sort();
    const list = known.length === 0 ? 'none is defined' : `known: ${[DEFAULT_CONTEXT, ...known].join(', ')}`;
    throw new CliError(
      `${contextSource}: no context named ${JSON.stringify(context)} (${list})`,
      contextSource === 'the current context' ? `\`job-cli context use ${DEFAULT_CONTEXT}\` goes back to the default` : '`job-cli context ls` lists them',
      EXIT_USAGE,
    );
  }

  const defaults = defaultClientTlsPaths(inputs.configDir);
  const fromContext = entry === undefined ? undefined : `context ${context}`;
  const pick = (key: 'address' | 'ca' | 'cert' | 'key', flag: string | undefined, contextValue: string | undefined, fallback: string) => {
    if (flag !== undefined) return { value: flag, source: FLAGS[key], local: true };
    const fromEnv = envValue(ENV[key]);
    if (fromEnv !== undefined) return { value: fromEnv, source: ENV[key], local: true };
    if (contextValue !== undefined) return { value: contextValue, source: fromContext!, local: false };
    return { value: fallback, source: 'default', local: false };
  };
  const address = pick('address', flags.addr, entry?.address, DEFAULT_ADDRESS);
  const files = {
    ca: pick('ca', flags.ca, entry?.ca, defaults.caPath),
    cert: pick('cert', flags.cert, entry?.cert, defaults.certificatePath),
    key: pick('key', flags.key, entry?.key, defaults.privateKeyPath),
  };
  const file = (p: { value: string; local: boolean }) => (p.local ? path.resolve(inputs.cwd, p.value) : p.value);
  return {
    context,
    address: normalizeAddress(address.value, address.source),
    tls: { caPath: file(files.ca), certificatePath: file(files.cert), privateKeyPath: file(files.key) },
    sources: { context: contextSource, address: address.source, ca: files.ca.source, cert: files.cert.source, key: files.key.source },
  };
}
