// `job-cli ui` as a user runs it, with a throwaway HOME (its contexts) and --json, so the test
// reads the URL with the token from its first line.
import { writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

import type { TlsFilePaths } from '../../src/pki';
import { spawnCli, type CliProcess } from './cli';

export interface UiProcess {
  process: CliProcess;
  /** With the token. */
  url: string;
  origin: string;
  stop(): Promise<void>;
}

/** Writes HOME/.config/jobworker/contexts.json: each context a daemon address with these credentials. */
export function writeContexts(home: string, contexts: Record<string, { address: string; tls: TlsFilePaths }>, current?: string): void {
  const dir = path.join(home, '.config', 'jobworker');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const entries = Object.fromEntries(Object.entries(contexts).map(([name, { address, tls }]) => [name, { address, ca: tls.caPath, cert: tls.certificatePath, key: tls.privateKeyPath }]));
  writeFileSync(path.join(dir, 'contexts.json'), JSON.stringify({ ...(current === undefined ? {} : { current }), contexts: entries }), { mode: 0o600 });
}

export async function startUi(home: string, args: string[] = []): Promise<UiProcess> {
  const ui = spawnCli(['ui', '--no-open', '--json', '--timeout', '3s', ...args], { home, timeoutMs: 30 * 60_000 });
  await ui.waitFor('\n');
  const { url } = JSON.parse(ui.stdout.split('\n')[0]!) as { url: string };
  return {
    process: ui,
    url,
    origin: new URL(url).origin,
    async stop() {
      ui.child.kill('SIGINT');
      const result = await ui.result;
      if (result.code !== 0) throw new Error(`job-cli ui exited with ${result.code ?? result.signal}; stderr:\n${result.stderr}`);
    },
  };
}
