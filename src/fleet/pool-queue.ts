// The pools' JetStream work-queue streams: one stream per pool, one subject, and one durable pull
// consumer that every daemon serving the pool fetches from (a message goes to one of them and
// leaves the stream when acked). A message carries only the job id (the record in the jobs bucket
// has the rest); its message id makes a repeated publish of the same submission a no-op.
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type Consumer } from '@nats-io/jetstream';

import { JobworkerError } from '../errors';
import { isJobId } from '../job-id';
import { poolStream, poolSubject, RUNNERS_CONSUMER } from './names';
import type { NatsLink } from './nats-link';

/** Repeats of one message id within this window are dropped by JetStream. */
const DUPLICATE_WINDOW_NS = 10 * 60 * 1e9;
/** A daemon that fetched a message and died before acking it: the message comes back after this. */
const ACK_WAIT_NS = 10 * 1e9;
const NS_PER_MS = 1e6;

export class PoolQueue {
  #known = new Set<string>();

  constructor(
    private readonly link: NatsLink,
    private readonly replicas: number,
  ) {}

  /** Makes the pool's stream and consumer if they are missing (daemons serving a pool do, at start). */
  async ensure(pool: string): Promise<void> {
    const { jsm } = this.link;
    const stream = poolStream(pool);
    const exists = await jsm.streams.info(stream).then(() => true, () => false);
    if (!exists) {
      await jsm.streams.add({
        name: stream,
        subjects: [poolSubject(pool)],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        num_replicas: this.replicas,
        duplicate_window: DUPLICATE_WINDOW_NS,
      }).catch(async (error: unknown) => {
        // Another daemon made it in between.
        if (!(await jsm.streams.info(stream).then(() => true, () => false))) throw error;
      });
    }
    await jsm.consumers.add(stream, {
      durable_name: RUNNERS_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ACK_WAIT_NS,
      max_deliver: -1,
      max_ack_pending: 10_000,
      filter_subject: poolSubject(pool),
    });
    this.#known.add(pool);
  }

  /** Whether some daemon serves the pool (its stream exists); a typo'd pool name is refused, not queued for ever. */
  async exists(pool: string): Promise<boolean> {
    if (this.#known.has(pool)) return true;
    const found = await this.link.jsm.streams.info(poolStream(pool)).then(() => true, (error: unknown) => {
      if (String(error).includes('stream not found')) return false;
      throw new JobworkerError('unavailable', `NATS did not answer about pool ${pool}: ${String(error)}`);
    });
    if (found) this.#known.add(pool);
    return found;
  }

  /** Queues job `id` in `pool`; `messageId` repeated within the window is stored once. Answers its sequence. */
  async publish(pool: string, id: string, messageId: string): Promise<number> {
    const ack = await this.link.js.publish(poolSubject(pool), JSON.stringify({ id }), { msgID: messageId, timeout: 5000 });
    return ack.seq;
  }

  /** Deletes a queued message (a stop of a queued job); false if it was gone already. */
  async remove(pool: string, sequence: number): Promise<boolean> {
    return this.link.jsm.streams.deleteMessage(poolStream(pool), sequence, false).catch(() => false);
  }

  consumer(pool: string): Promise<Consumer> {
    return this.link.js.consumers.get(poolStream(pool), RUNNERS_CONSUMER);
  }

  /** Delay of a message handed back (nak) because it does not fit here now. */
  static nakDelayMs(everFits: boolean): number {
    return everFits ? 250 : 5000;
  }

  static readonly ackWaitMs = ACK_WAIT_NS / NS_PER_MS;
}

/** The job id a pool message carries; null for anything else (it is dropped). */
export function jobIdOfMessage(payload: Uint8Array): string | null {
  if (payload.length > 200) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(payload).toString('utf8'));
    if (typeof value !== 'object' || value === null || !('id' in value)) return null;
    const id = (value as { id: unknown }).id;
    return typeof id === 'string' && isJobId(id) ? id : null;
  } catch {
    return null;
  }
}
