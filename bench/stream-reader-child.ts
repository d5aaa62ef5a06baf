// The reading side of a streaming benchmark, in a process of its own that loads only what it uses:
// the raw TLS floor's reader (node:tls) or library followers (src/client). In the benchmark's own
// process the reader shared a heap with the harness, the test PKI and its ASN.1 libraries, and
// there V8 collected the socket's read buffers with a full mark-compact every ~30 MB instead of in
// the young generation (measured: 0 mark-compacts and ~1.1 s of CPU per GiB for a bare HTTP/2
// reader in a clean process; 32 and ~1.7 s once the test PKI module was loaded). A user's program
// is the clean process, and every contender is now measured the same way.
//
//   node stream-reader-child.js CONFIG_JSON
// Connects, prints "ready", waits for a line on stdin (a job id for followers, anything for the
// floor), reads everything, prints one JSON line: { bytes, seconds, cpuSeconds }.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import * as tls from 'node:tls';

import type { JobworkerClient } from '../src/client';
import { followBytes } from './follow-bytes';

interface Credentials {
  caPath: string;
  certificatePath: string;
  privateKeyPath: string;
}

export type StreamReaderConfig =
  | { kind: 'tls'; port: number; files: Credentials }
  | { kind: 'followers'; address: string; files: Credentials; followers: number; connections: number; reuseBuffers: boolean };

export interface StreamReaderReport {
  /** Bytes of output (or of the TLS stream) read, all readers together. */
  bytes: number;
  /** From the go line to the last byte. */
  seconds: number;
  /** This process's CPU (user + system) over the same time. */
  cpuSeconds: number;
}

async function readTls(port: number, files: Credentials): Promise<number> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: readFileSync(files.caPath),
    cert: readFileSync(files.certificatePath),
    key: readFileSync(files.privateKeyPath),
    minVersion: 'TLSv1.3',
  });
  let got = 0;
  socket.on('data', (data: Buffer) => (got += data.length));
  await once(socket, 'end');
  socket.destroy();
  return got;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as StreamReaderConfig;
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  let run: (goLine: string) => Promise<number>;
  let clients: JobworkerClient[] = [];
  if (config.kind === 'tls') {
    run = () => readTls(config.port, config.files);
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { JobworkerClient } = require('../src/client') as typeof import('../src/client');
    clients = await Promise.all(
      Array.from({ length: config.connections }, () => JobworkerClient.connect({ address: config.address, tls: config.files, callTimeoutMs: 60_000 })),
    );
    run = async (jobId) => {
      const got = await Promise.all(Array.from({ length: config.followers }, (_, i) => followBytes(clients[i % clients.length]!, jobId, config.reuseBuffers)));
      return got.reduce((a, b) => a + b, 0);
    };
  }
  process.stdout.write('ready\n');
  const go = await lines.next();
  if (go.done === true) {
    // The benchmark went away before saying go.
    for (const client of clients) client.close();
    process.exit(1);
  }
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const bytes = await run(go.value.trim());
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  for (const client of clients) client.close();
  const report: StreamReaderReport = { bytes, seconds, cpuSeconds: (used.user + used.system) / 1e6 };
  // A pipe's writes are asynchronous: exit once the report is out (the clients' sockets may linger).
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
}

main().catch((error: unknown) => {
  process.stderr.write(`stream-reader-child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
