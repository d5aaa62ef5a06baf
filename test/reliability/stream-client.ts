// A StreamLogs client in its own process, for the scenarios that kill it (SIGKILL), freeze it
// (SIGSTOP: a half-open peer that answers nothing) or let it stop reading. Prints "ready" once
// every stream has received its first message, then keeps running until killed.
//
//   node dist/test/reliability/stream-client.js '{"address":…,"tls":{…},"jobId":…,"streams":5,"mode":"read"|"stall"}'
import { JobworkerClient } from '../../src/client';
import type { TlsFilePaths } from '../../src/pki';

interface Options {
  address: string;
  tls: TlsFilePaths;
  jobId: string;
  streams: number;
  /** read: consume everything; stall: take the first message, then never read again. */
  mode: 'read' | 'stall';
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2]!) as Options;
  const client = await JobworkerClient.connect({ address: options.address, tls: options.tls });
  const first: Promise<void>[] = [];
  for (let i = 0; i < options.streams; i++) {
    const iterator = client.streamLogs({ jobId: options.jobId, follow: true })[Symbol.asyncIterator]();
    first.push(
      iterator.next().then(async () => {
        if (options.mode === 'stall') return; // never pull again: grpc-js stops reading, the window closes
        void (async () => {
          while (!(await iterator.next()).done);
        })().catch(() => undefined);
      }),
    );
  }
  await Promise.all(first);
  process.stdout.write('ready\n');
  setInterval(() => undefined, 1 << 30);
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
