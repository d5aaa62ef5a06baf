// One follower of a job's log from its first byte to its end, counting the output bytes: what the
// streaming benchmarks measure, in the benchmark process and in bench/stream-reader-child.ts alike.
import type { JobworkerClient } from '../src/client';

export async function followBytes(client: JobworkerClient, jobId: string, reuseBuffers = false): Promise<number> {
  let bytes = 0;
  for await (const message of client.streamLogs({ jobId, follow: true }, undefined, { reuseBuffers })) for (const chunk of message.chunks) bytes += chunk.data.length;
  return bytes;
}
