// Named contexts: a daemon address and the credentials to reach it, stored under a name, like docker
// contexts or kubeconfig. One small JSON file in the config dir (contexts.json, mode 0600), written
// atomically (a temporary file in the same directory, fsync, rename), paths stored absolute.
//
//   { "current": "prod", "contexts": { "prod": { "address": "worker1:50051", "ca": "/…", "cert": "/…", "key": "/…" } } }
//
// "default" is not stored: it is the implicit context (localhost:50051 and the config dir's
// ca.pem, cert.pem, key.pem, where `job-worker --dev` installs its admin certificate).
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';

import * as t from 'typanion';

import { errorCode } from '../../errors';
import { defaultClientTlsPaths } from '../../paths';
import { CliError } from '../run';

export const DEFAULT_CONTEXT = 'default';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface ContextEntry {
  /** HOST:PORT of the daemon. */
  address: string;
  ca: string;
  cert: string;
  key: string;
}

export interface ContextsFile {
  /** Name of the context commands use when none is named; absent: "default". */
  current?: string;
  contexts: Record<string, ContextEntry>;
}

const isContextsFile = t.isObject({
  current: t.isOptional(t.isString()),
  contexts: t.isRecord(t.isObject({ address: t.isString(), ca: t.isString(), cert: t.isString(), key: t.isString() })),
});

export function contextsPath(configDir: string): string {
  return path.join(configDir, 'contexts.json');
}

/** A reason the name cannot be a context's, or null. */
export function checkContextName(name: string): string | null {
  if (name === DEFAULT_CONTEXT) return `"${DEFAULT_CONTEXT}" is the built-in context and cannot be redefined`;
  if (!NAME.test(name)) return `${JSON.stringify(name)} is not a valid name (letters, digits, ".", "_", "-"; at most 63)`;
  return null;
}

/** The file's contents; an absent file is no contexts. A damaged file is an error naming it. */
export function readContexts(configDir: string): ContextsFile {
  const file = contextsPath(configDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return { contexts: {} };
    throw new CliError(`contexts file ${file}: cannot read it (${errorCode(error) ?? String(error)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(`contexts file ${file}: not valid JSON (${(error as Error).message})`, 'fix it or remove it (contexts are then lost)');
  }
  const errors: string[] = [];
  if (!isContextsFile(value, { errors })) {
    throw new CliError(`contexts file ${file}: ${errors.join('; ')}`, 'fix it or remove it (contexts are then lost)');
  }
  return value.current === undefined ? { contexts: value.contexts } : { current: value.current, contexts: value.contexts };
}

/** What `--all-contexts` means: every saved context, and "default" first when its certificate exists. */
export function everyContextName(configDir: string, contents: ContextsFile): string[] {
  const saved = Object.keys(contents.contexts).sort();
  return existsSync(defaultClientTlsPaths(configDir).certificatePath) ? [DEFAULT_CONTEXT, ...saved] : saved;
}

/** Replaces the file atomically: readers see the old or the new contents, never a torn write. */
export function writeContexts(configDir: string, contents: ContextsFile): void {
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const file = contextsPath(configDir);
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(contents, null, 2)}\n`);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  const dir = openSync(configDir, 'r');
  try {
    fsyncSync(dir); // the rename itself survives a crash
  } finally {
    closeSync(dir);
  }
}
