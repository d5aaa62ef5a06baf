// One open page: its WebSocket. On connecting it gets every daemon's status and jobs, then every
// change, the rates of running jobs, and what it subscribes to: a job's record and samples
// (watch-job) and a job's output (stream-log, binary frames with flow control). Messages from the
// page are checked (shape, sizes, counts) before anything is done; a page that cannot keep up with
// the updates is disconnected (it reconnects and starts from a fresh snapshot).
import * as t from 'typanion';
import type { RawData, WebSocket } from 'ws';

import { ClientError, type JobView } from '../../client';
import { JOB_ID_PATTERN } from '../../job-id';
import { describeFailure, type HostConnection, type HostEvent } from './host-connection';
import { LogRelay } from './log-relay';
import type { ClientMessage, ServerMessage } from './protocol';
import type { ResourceSampler, SamplerEvent } from './resource-sampler';
import { toUiJob } from './ui-job';

export interface HostRuntime {
  connection: HostConnection;
  sampler: ResourceSampler;
}

/** Subscriptions one page may hold at once. */
const MAX_SUBSCRIPTIONS = 64;
/** Updates queued for a page that does not read them: past this it is disconnected. */
const MAX_BUFFERED_BYTES = 32 << 20;

const isSub = t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 2 ** 31));
const isName = t.cascade(t.isString(), t.hasMaxLength(200));
const isJob = t.cascade(t.isString(), t.matchesRegExp(JOB_ID_PATTERN));
const isClientMessage = t.isOneOf(
  [
    t.isObject({ type: t.isLiteral('watch-job'), sub: isSub, host: isName, job: isJob }),
    t.isObject({
      type: t.isLiteral('stream-log'),
      sub: isSub,
      host: isName,
      job: isJob,
      from: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, Number.MAX_SAFE_INTEGER)),
      follow: t.isBoolean(),
      streams: t.isArray(t.isEnum(['stdout', 'stderr'] as const)),
    }),
    t.isObject({ type: t.isLiteral('ack'), sub: isSub, bytes: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, Number.MAX_SAFE_INTEGER)) }),
    t.isObject({ type: t.isLiteral('cancel'), sub: isSub }),
  ],
  { exclusive: true },
);

interface Subscription {
  close(): void;
  relay?: LogRelay;
  /** watch-job: the job whose samples go to this subscription (once its record is sent). */
  samplesOf?: { host: string; job: string };
}

export class PageSession {
  readonly #socket: WebSocket;
  readonly #hosts: ReadonlyMap<string, HostRuntime>;
  readonly #subs = new Map<number, Subscription>();
  readonly #cleanup: (() => void)[] = [];

  constructor(socket: WebSocket, hosts: ReadonlyMap<string, HostRuntime>) {
    this.#socket = socket;
    this.#hosts = hosts;
  }

  start(): void {
    this.#send({ type: 'hosts', hosts: this.#hostViews() });
    for (const [name, { connection, sampler }] of this.#hosts) {
      this.#send({ type: 'jobs', host: name, jobs: connection.jobs().map((job) => toUiJob(job)) });
      this.#cleanup.push(connection.subscribe((event) => this.#onHostEvent(name, event)));
      this.#cleanup.push(sampler.subscribe((event) => this.#onSamplerEvent(name, event)));
      this.#cleanup.push(sampler.addViewer());
    }
    this.#socket.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    this.#socket.on('close', () => this.#close());
    this.#socket.on('error', () => this.#close());
  }

  #close(): void {
    for (const cleanup of this.#cleanup.splice(0)) cleanup();
    for (const sub of this.#subs.values()) sub.close();
    this.#subs.clear();
  }

  #hostViews() {
    return [...this.#hosts.values()].map(({ connection }) => connection.view);
  }

  #onHostEvent(host: string, event: HostEvent): void {
    if (event.type === 'status') this.#send({ type: 'hosts', hosts: this.#hostViews() });
    else if (event.type === 'jobs') this.#send({ type: 'jobs', host, jobs: event.jobs.map((job) => toUiJob(job)) });
    else if (event.type === 'job') this.#send({ type: 'job', host, job: toUiJob(event.job) });
    else this.#send({ type: 'job-removed', host, id: event.id });
  }

  #onSamplerEvent(host: string, event: SamplerEvent): void {
    if (event.type === 'rates') {
      this.#send({ type: 'rates', host, rates: event.rates });
      return;
    }
    for (const [sub, subscription] of this.#subs) {
      if (subscription.samplesOf?.host === host && subscription.samplesOf.job === event.job) this.#send({ type: 'sample', sub, sample: event.sample });
    }
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString());
    } catch {
      message = undefined;
    }
    const errors: string[] = [];
    if (!isClientMessage(message, { errors })) {
      this.#socket.close(1008, 'unexpected message'.slice(0, 120));
      return;
    }
    const request: ClientMessage = message;
    if (request.type === 'ack') this.#subs.get(request.sub)?.relay?.ack(request.bytes);
    else if (request.type === 'cancel') this.#cancel(request.sub);
    else {
      this.#cancel(request.sub);
      if (this.#subs.size >= MAX_SUBSCRIPTIONS) {
        this.#send({ type: 'sub-error', sub: request.sub, code: 'RESOURCE_EXHAUSTED', message: `at most ${MAX_SUBSCRIPTIONS} subscriptions per page` });
        return;
      }
      const host = this.#hosts.get(request.host);
      if (host === undefined) {
        this.#send({ type: 'sub-error', sub: request.sub, code: 'NOT_FOUND', message: `no host named ${JSON.stringify(request.host)}` });
        return;
      }
      if (request.type === 'watch-job') this.#watchJob(request.sub, request.host, host, request.job);
      else this.#streamLog(request, host);
    }
  }

  #cancel(sub: number): void {
    this.#subs.get(sub)?.close();
    this.#subs.delete(sub);
  }

  #fail(sub: number, host: HostRuntime, error: unknown): void {
    if (!this.#subs.has(sub)) return; // cancelled meanwhile: nobody is waiting for an answer
    this.#subs.get(sub)?.close();
    this.#subs.delete(sub);
    const code = error instanceof ClientError ? error.codeName : 'UNAVAILABLE';
    this.#send({ type: 'sub-error', sub, code, message: describeFailure(error, host.connection.connection) });
  }

  #watchJob(sub: number, hostName: string, host: HostRuntime, id: string): void {
    const release = host.sampler.watchJob(id);
    const subscription: Subscription = { close: release };
    this.#subs.set(sub, subscription);
    let job: Promise<JobView>;
    try {
      job = host.connection.client().getJob(id);
    } catch (error) {
      this.#fail(sub, host, error);
      return;
    }
    job.then(
      (view) => {
        if (this.#subs.get(sub) !== subscription) return;
        host.sampler.record(view);
        this.#send({ type: 'job-detail', sub, job: toUiJob(view), samples: [...host.sampler.samplesOf(id)] });
        subscription.samplesOf = { host: hostName, job: id };
      },
      (error: unknown) => this.#fail(sub, host, error),
    );
  }

  #streamLog(request: Extract<ClientMessage, { type: 'stream-log' }>, host: HostRuntime): void {
    const relay = new LogRelay(request.sub, (header, data) => this.#sendBinary(header, data));
    const subscription: Subscription = { close: () => relay.cancel(), relay };
    this.#subs.set(request.sub, subscription);
    let client;
    try {
      client = host.connection.client();
    } catch (error) {
      this.#fail(request.sub, host, error);
      return;
    }
    const streams = request.streams.length === 0 ? {} : { streams: [...new Set(request.streams)] };
    relay.run(client, { jobId: request.job, fromOffset: request.from, follow: request.follow, ...streams }).then(
      () => {
        if (this.#subs.get(request.sub) === subscription) this.#subs.delete(request.sub);
      },
      (error: unknown) => {
        if (this.#subs.get(request.sub) === subscription) this.#fail(request.sub, host, error);
      },
    );
  }

  #send(message: ServerMessage): void {
    if (this.#socket.readyState !== this.#socket.OPEN) return;
    if (this.#socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.#socket.close(1013, 'the page does not keep up with the updates');
      return;
    }
    this.#socket.send(JSON.stringify(message));
  }

  #sendBinary(header: Uint8Array, data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#socket.readyState !== this.#socket.OPEN) {
        reject(new Error('the page went away'));
        return;
      }
      this.#socket.send(Buffer.concat([header, data]), { binary: true }, (error) => (error ? reject(error) : resolve()));
    });
  }
}
