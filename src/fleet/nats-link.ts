// The daemon's connection to NATS: mutual TLS 1.3 with the daemon's own certificate (never a
// user's), reconnecting for ever, and how long it has been connected without a break — the reaper
// trusts a missing heartbeat only after this daemon itself has been connected for a heartbeat's
// lifetime (a NATS restart expires every key at once).
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';

import { JobworkerError } from '../errors';
import type { Logger } from '../logger';
import { loadClientTlsMaterial, TLS_POLICY, type TlsFilePaths } from '../pki';

export interface NatsSettings {
  /** "tls://host:4222" URLs of the NATS cluster's servers. */
  servers: string[];
  /** The daemon's own client certificate for NATS, and the CA that signed NATS's server certificates. */
  tls: TlsFilePaths;
}

export class NatsLink {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly kvm: Kvm;
  /** Milliseconds since the epoch when the current connection came up; null while disconnected. */
  #connectedSince: number | null = Date.now();
  #closed = false;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, logger: Logger) {
    this.nc = nc;
    this.jsm = jsm;
    this.js = jetstream(nc);
    this.kvm = new Kvm(this.js);
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          this.#connectedSince = null;
          logger.warn('NATS connection lost; reconnecting', { server: status.server });
        } else if (status.type === 'reconnect') {
          this.#connectedSince = Date.now();
          logger.info('NATS connection back', { server: status.server });
        }
      }
    })();
  }

  static async open(settings: NatsSettings, name: string, logger: Logger): Promise<NatsLink> {
    const material = await loadClientTlsMaterial(settings.tls, { rolesNotExpected: true });
    for (const warning of material.warnings) logger.warn(warning, { file: settings.tls.certificatePath });
    // The client passes these through to tls.connect: the project's TLS 1.3 policy on this link too.
    const tls: TlsConnectionOptions & { ca: string; cert: string; key: string } = {
      ...TLS_POLICY,
      ca: material.caPem,
      cert: material.certificatePem,
      key: material.privateKeyPem,
    };
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: settings.servers,
        tls,
        name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        pingInterval: 10_000,
        maxPingOut: 2,
        timeout: 10_000,
      });
    } catch (error) {
      throw new JobworkerError('unavailable', `cannot connect to NATS at ${settings.servers.join(', ')}: ${(error as Error).message}`);
    }
    try {
      return new NatsLink(nc, await jetstreamManager(nc), logger);
    } catch (error) {
      await nc.close();
      throw new JobworkerError('unavailable', `NATS at ${settings.servers.join(', ')} has no JetStream (start it with -js): ${(error as Error).message}`);
    }
  }

  /** How long this daemon has been connected without a break (0 while disconnected). */
  connectedForMs(): number {
    return this.#connectedSince === null ? 0 : Date.now() - this.#connectedSince;
  }

  /** The largest message the servers accept. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1 << 20;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.nc.drain().catch(() => this.nc.close());
  }
}
