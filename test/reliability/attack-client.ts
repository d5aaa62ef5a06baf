// Attacking clients in a process of their own, so that what the scenario measures in its own
// process (another client's latency) is the daemon's doing, not the attackers' decoding.
//
//   node dist/test/reliability/attack-client.js '{"address":…,"tls":{…},"mode":"list"|"tail","clients":4,"ms":…,"jobId":…}'
// Prints one JSON line with its results when done.
import { JobworkerClient, type JobView } from '../../src/client';
import type { TlsFilePaths } from '../../src/pki';

interface Options {
  address: string;
  tls: TlsFilePaths;
  mode: 'list' | 'tail';
  clients: number;
  /** Keep attacking this long. */
  ms: number;
  /** tail: the job whose log is scanned. */
  jobId?: string;
}

interface Listing {
  ids: string[];
  pages: number;
  biggestPageArgBytes: number;
}

async function listAll(client: JobworkerClient): Promise<Listing> {
  const listing: Listing = { ids: [], pages: 0, biggestPageArgBytes: 0 };
  let pageToken = '';
  do {
    const page = await client.listJobs({ pageSize: 1000, pageToken });
    listing.pages++;
    const argBytes = page.jobs.reduce((n: number, job: JobView) => n + job.args.reduce((m, a) => m + a.length, 0), 0);
    listing.biggestPageArgBytes = Math.max(listing.biggestPageArgBytes, argBytes);
    listing.ids.push(...page.jobs.map((job) => job.id));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return listing;
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2]!) as Options;
  const clients = await Promise.all(Array.from({ length: options.clients }, () => JobworkerClient.connect({ address: options.address, tls: options.tls, callTimeoutMs: 120_000 })));
  const until = Date.now() + options.ms;
  const listings: Listing[] = [];
  let answers = 0;
  const wrong: string[] = [];
  await Promise.all(clients.map(async (client, i) => {
    while (Date.now() < until) {
      if (options.mode === 'list') {
        listings.push(await listAll(client));
        continue;
      }
      let text = '';
      const request = i % 2 === 0 ? { jobId: options.jobId!, tailLines: 3 } : { jobId: options.jobId!, sinceUnixMicros: Date.now() * 1000 - 1, tailLines: 1 };
      for await (const message of client.streamLogs(request)) for (const chunk of message.chunks) text += chunk.data.toString();
      if (i % 2 === 0 && text !== '499998\n499999\n500000\n') wrong.push(JSON.stringify(text.slice(0, 80)));
      answers++;
    }
  }));
  for (const client of clients) client.close();
  const summary = listings.map((l) => ({ count: l.ids.length, unique: new Set(l.ids).size, pages: l.pages, biggestPageArgBytes: l.biggestPageArgBytes }));
  process.stdout.write(`${JSON.stringify({ listings: summary, answers, wrong })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
