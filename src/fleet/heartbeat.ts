// Heartbeats: each daemon puts its key in the hosts bucket every `periodMs`; the bucket's max age
// (set when it is made, the same for every daemon) makes the key of a daemon that stopped putting
// it vanish. NATS 2.9 has no per-message TTL and its KV watchers are not told of expiry, so peers
// ask for the key: present with the same process instance = alive. Only the NATS server's clock
// decides, never a comparison of two hosts' clocks.
import type { KV, Kvm } from '@nats-io/kv';
import * as t from 'typanion';

import { JobworkerError } from '../errors';
import type { Logger } from '../logger';
import { HOSTS_BUCKET } from './names';

/** How the heartbeat TTL is spent: the key lives 60 % of it; beats and reaper scans come every 20 %. */
export function heartbeatTimings(ttlMs: number): { keyMaxAgeMs: number; periodMs: number } {
  return { keyMaxAgeMs: Math.round(ttlMs * 0.6), periodMs: Math.max(100, Math.round(ttlMs * 0.2)) };
}

export interface HostBeat {
  instance: string;
  address: string;
  pools: string[];
}

const isBeat = t.isObject({
  instance: t.cascade(t.isString(), [t.hasMaxLength(64)]),
  address: t.cascade(t.isString(), [t.hasMaxLength(300)]),
  pools: t.cascade(t.isArray(t.cascade(t.isString(), [t.hasMaxLength(32)])), [t.hasMaxLength(64)]),
});

/** Opens the hosts bucket (made on first use); refuses one whose max age another TTL made. */
export async function openHostsBucket(kvm: Kvm, keyMaxAgeMs: number): Promise<KV> {
  const kv = await kvm.create(HOSTS_BUCKET, { ttl: keyMaxAgeMs, history: 1 }).catch(() => kvm.open(HOSTS_BUCKET));
  const status = await kv.status();
  if (status.ttl !== keyMaxAgeMs) {
    throw new JobworkerError(
      'failed-precondition',
      `the NATS bucket ${HOSTS_BUCKET} keeps heartbeats ${status.ttl} ms, this daemon's fleet.heartbeatTtlMs asks for ${keyMaxAgeMs} ms (60 %): give every daemon the same heartbeatTtlMs`,
    );
  }
  return kv;
}

export class Heartbeat {
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly kv: KV,
    private readonly host: string,
    private readonly beat: HostBeat,
    private readonly periodMs: number,
    private readonly logger: Logger,
  ) {}

  /** Puts the first beat (so start-up fails if NATS refuses it), then keeps beating. */
  async start(): Promise<void> {
    await this.#put();
    let failing = false;
    this.#timer = setInterval(() => {
      this.#put().then(
        () => {
          if (failing) this.logger.info('heartbeat put again');
          failing = false;
        },
        (error: unknown) => {
          if (!failing) this.logger.warn('heartbeat not put', { error: String(error) });
          failing = true;
        },
      );
    }, this.periodMs);
  }

  /** Stops beating and deletes the key: peers see this daemon gone at once. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.kv.delete(this.host).catch(() => undefined);
  }

  async #put(): Promise<void> {
    await this.kv.put(this.host, JSON.stringify(this.beat), { timeout: this.periodMs * 2 });
  }
}

/** The live process instance of `host`, or null if its heartbeat has expired (or is not valid). */
export async function liveInstanceOf(kv: KV, host: string): Promise<string | null> {
  const entry = await kv.get(host);
  if (entry === null || entry.operation !== 'PUT') return null;
  let value: unknown;
  try {
    value = entry.json();
  } catch {
    return null;
  }
  return isBeat(value) ? value.instance : null;
}
