// A real `nats-server -js` (Debian's package) on loopback for the fleet tests: mutual TLS with a CA
// of its own (the fleet CA), JetStream file storage in a temporary directory (kept across restarts),
// and only the daemons' certificates mapped to users (verify_and_map). Killed by its pid only.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

import type { TlsFilePaths } from '../../src/pki';

export const NATS_SERVER_BIN = '/usr/sbin/nats-server';

/** The installed nats-server's version ("2.9.10"), or null when it is not installed. */
export function natsServerVersion(): string | null {
  const run = spawnSync(NATS_SERVER_BIN, ['--version'], { encoding: 'utf8' });
  return run.status === 0 ? (/v?(\d+\.\d+\.\d+)/.exec(run.stdout)?.[1] ?? null) : null;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface NatsServerSetup {
  dir: string;
  /** Its server certificate (names localhost) and the CA its clients' certificates must come from. */
  tls: TlsFilePaths;
  /** Certificate subjects allowed in ("CN=w1"). */
  users: string[];
}

export class NatsServer {
  readonly port: number;
  #process: ChildProcess | null = null;
  #config: string;
  log = '';

  private constructor(port: number, config: string) {
    this.port = port;
    this.#config = config;
  }

  static async start(setup: NatsServerSetup): Promise<NatsServer> {
    const port = await freePort();
    const config = path.join(setup.dir, 'nats.conf');
    writeFileSync(
      config,
      [
        `listen: 127.0.0.1:${port}`,
        `jetstream { store_dir: ${JSON.stringify(path.join(setup.dir, 'jetstream'))}, max_memory_store: 64MB, max_file_store: 1GB }`,
        `tls { cert_file: ${JSON.stringify(setup.tls.certificatePath)}, key_file: ${JSON.stringify(setup.tls.privateKeyPath)}, ca_file: ${JSON.stringify(setup.tls.caPath)}, verify_and_map: true, timeout: 5 }`,
        `authorization { users = [ ${setup.users.map((user) => `{ user: ${JSON.stringify(user)} }`).join(', ')} ] }`,
        '',
      ].join('\n'),
    );
    const server = new NatsServer(port, config);
    await server.run();
    return server;
  }

  get url(): string {
    return `tls://localhost:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Starts the process and resolves once it says it is ready (JetStream recovered). */
  async run(): Promise<void> {
    const child = spawn(NATS_SERVER_BIN, ['-c', this.#config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#process = child;
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        this.log += `${line}\n`;
        if (line.includes('Server is ready')) resolve();
      });
      child.once('exit', (code, signal) => reject(new Error(`nats-server exited (${code ?? signal}) before it was ready:\n${this.log}`)));
    });
    await ready;
  }

  /** SIGKILL, as a crash: no clean shutdown of JetStream's files. */
  async kill(): Promise<void> {
    const child = this.#process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    this.#process = null;
  }

  async stop(): Promise<void> {
    const child = this.#process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    this.#process = null;
  }
}
