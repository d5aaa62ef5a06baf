// `job-cli ui` once its flags are read: connect to each daemon (each on its own, retrying while
// down), serve the page, print its URL (and open it in a browser on a desktop), and run until
// Ctrl-C or SIGTERM.
import { randomBytes } from 'node:crypto';

import type { ResolvedConnection } from '../job-cli/connection';
import type { AccessSecrets } from './access-guard';
import { hasDesktop, openInBrowser } from './browser-opener';
import { HostConnection } from './host-connection';
import type { ListenAddress } from './listen-address';
import type { HostRuntime } from './page-session';
import { ResourceSampler } from './resource-sampler';
import { StaticAssets } from './static-assets';
import { UiServer } from './ui-server';

export interface UiOptions {
  listen: ListenAddress;
  /** The daemons, by context name. */
  hosts: { name: string; connection: ResolvedConnection }[];
  timeoutMs: number;
  /** Open the page in a browser: yes, no, or when there is a desktop (undefined). */
  open: boolean | undefined;
  json: boolean;
  print(text: string): void;
  note(text: string): void;
}

const secret = () => randomBytes(32).toString('base64url');

export async function runUi(options: UiOptions): Promise<number> {
  const assets = new StaticAssets();
  const secrets: AccessSecrets = { token: secret(), session: secret() };
  const hosts = new Map<string, HostRuntime>();
  for (const { name, connection } of options.hosts) {
    const host = new HostConnection(name, connection, options.timeoutMs);
    hosts.set(name, { connection: host, sampler: new ResourceSampler(host) });
  }
  const server = await UiServer.start({ listen: options.listen, hosts, secrets, assets });
  const running = [...hosts.values()].map(({ connection }) => connection.run());
  // Before the URL is printed: whoever reads it may stop us at once, and a SIGTERM that came before
  // the handler would kill the process instead of stopping it cleanly.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop).off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop).on('SIGTERM', stop);
  });

  const names = options.hosts.map(({ name, connection }) => `${name} (${connection.address})`);
  if (options.json) {
    options.print(JSON.stringify({ url: server.urlWithToken, hosts: options.hosts.map(({ name, connection }) => ({ context: name, address: connection.address })) }));
  } else {
    options.note(`serving ${names.join(', ')} on ${server.url}`);
    options.note('open this URL (it carries the access token: anyone who has it can act as you):');
    options.print(`    ${server.urlWithToken}`);
    options.note('Ctrl-C stops it');
  }
  const opener = options.open ?? hasDesktop(process.env) ? await openInBrowser(server.urlWithToken) : null;
  if (opener?.failure !== undefined) options.note(`could not open a browser (${opener.failure}); open the URL above`);

  await stopped;
  for (const { connection, sampler } of hosts.values()) {
    sampler.stop();
    connection.stop();
  }
  await server.close();
  await Promise.all(running);
  opener?.cleanup();
  return 0;
}
