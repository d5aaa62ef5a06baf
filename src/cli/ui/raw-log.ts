// "Download": a job's output as the raw bytes the job wrote (no headers, no jobworker notes), of
// both streams in capture order or of one, streamed from the daemon as it reads them (StreamLogs
// without follow: what there is now), at the pace the browser takes them.
import type { ServerResponse } from 'node:http';

import type { OutputStreamName } from '../../client';
import { ActionError } from './actions';
import type { HostConnection } from './host-connection';

function parseStreams(text: string | null): OutputStreamName[] {
  if (text === null || text === '') return [];
  const streams = text.split(',');
  for (const stream of streams) if (stream !== 'stdout' && stream !== 'stderr') throw new ActionError(400, `streams: expected stdout, stderr or both, got ${JSON.stringify(stream)}`);
  return [...new Set(streams as OutputStreamName[])];
}

/** Resolves when the response takes more, or is gone. */
function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done).off('close', done);
      resolve();
    };
    response.once('drain', done).once('close', done);
  });
}

/** `id` is a job id (checked by the caller: it goes into a header). */
export async function streamRawLog(host: HostConnection, id: string, streamsText: string | null, response: ServerResponse): Promise<void> {
  const streams = parseStreams(streamsText);
  const client = host.client();
  const abort = new AbortController();
  response.on('close', () => abort.abort());
  const headers = { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="job-${id}${streams.length === 1 ? `-${streams[0]}` : ''}.log"` };
  let started = false;
  for await (const message of client.streamLogs({ jobId: id, follow: false, ...(streams.length === 0 ? {} : { streams }) }, abort.signal)) {
    if (!started) {
      // Headers only once the daemon has answered: a refusal (NOT_FOUND…) is still a JSON error.
      response.writeHead(200, headers);
      started = true;
    }
    for (const chunk of message.chunks) {
      if (chunk.stream === 'marker') continue;
      if (!response.write(chunk.data)) await drained(response);
      if (abort.signal.aborted) return;
    }
  }
  if (!started) response.writeHead(200, headers);
  response.end();
}
