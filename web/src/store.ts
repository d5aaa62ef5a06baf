// What the page knows: every daemon's status and jobs, and the rates of running jobs, kept current
// from the link's messages. Pages read it and listen for changes.
import type { ServerMessage, UiHost, UiJob, UiRates } from '../../src/cli/ui/protocol';
import type { Link } from './link';

export interface ListedJob {
  /** The context the page asks about this job (its link, its actions). */
  host: string;
  job: UiJob;
  /** Other contexts that list the same pool job. */
  alsoOn: string[];
}

export class Store {
  hosts: UiHost[] = [];
  readonly jobs = new Map<string, Map<string, UiJob>>();
  readonly rates = new Map<string, UiRates>();
  readonly #listeners = new Set<() => void>();
  #pending = false;

  constructor(link: Link) {
    link.onMessage((message) => this.#apply(message));
  }

  host(name: string): UiHost | undefined {
    return this.hosts.find((host) => host.name === name);
  }

  job(host: string, id: string): UiJob | undefined {
    return this.jobs.get(host)?.get(id);
  }

  /**
   * Every job once. A pool job is listed by every daemon of its fleet (each mirrors the pool's
   * records), so it is shown once: as the daemon that runs it answers (whose address is the runner's,
   * with live resource use), else as the first connected context lists it; `alsoOn` names the others.
   */
  allJobs(): ListedJob[] {
    const listed: ListedJob[] = [];
    const pooled = new Map<string, { host: string; job: UiJob }[]>();
    for (const host of this.#hostOrder()) {
      for (const job of this.jobs.get(host)?.values() ?? []) {
        if (job.pool === null) listed.push({ host, job, alsoOn: [] });
        else pooled.set(job.id, [...(pooled.get(job.id) ?? []), { host, job }]);
      }
    }
    for (const copies of pooled.values()) {
      const shown = copies.find(({ host, job }) => this.#runs(host, job)) ?? copies[0]!;
      listed.push({ ...shown, alsoOn: copies.filter((copy) => copy !== shown).map(({ host }) => host) });
    }
    return listed;
  }

  /** Connected contexts first, each group in the contexts' order. */
  #hostOrder(): string[] {
    const order = this.hosts.map((host) => host.name);
    const rank = (name: string) => (this.host(name)?.status === 'up' ? 0 : 1) * 1e6 + (order.includes(name) ? order.indexOf(name) : order.length);
    return [...this.jobs.keys()].sort((a, b) => rank(a) - rank(b));
  }

  #runs(host: string, job: UiJob): boolean {
    const address = job.pool?.runnerAddress;
    return address !== null && address !== undefined && this.host(host)?.address === address;
  }

  ratesOf(host: string, id: string): UiRates | undefined {
    return this.rates.get(`${host}/${id}`);
  }

  /** Called after changes, at most once per animation frame. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #apply(message: ServerMessage): void {
    switch (message.type) {
      case 'hosts':
        this.hosts = message.hosts;
        break;
      case 'jobs':
        this.jobs.set(message.host, new Map(message.jobs.map((job) => [job.id, job])));
        break;
      case 'job': {
        let jobs = this.jobs.get(message.host);
        if (jobs === undefined) this.jobs.set(message.host, (jobs = new Map()));
        jobs.set(message.job.id, message.job);
        if (message.job.state !== 'running') this.rates.delete(`${message.host}/${message.job.id}`);
        break;
      }
      case 'job-removed':
        this.jobs.get(message.host)?.delete(message.id);
        this.rates.delete(`${message.host}/${message.id}`);
        break;
      case 'rates':
        for (const [id, rates] of Object.entries(message.rates)) this.rates.set(`${message.host}/${id}`, rates);
        break;
      default:
        return; // a subscription's message: its page handles it
    }
    this.#changed();
  }

  #changed(): void {
    if (this.#pending) return;
    this.#pending = true;
    requestAnimationFrame(() => {
      this.#pending = false;
      for (const listener of this.#listeners) listener();
    });
  }
}

/** What the page offers a host's identity (the daemon decides; a refused action shows its answer). */
export function canStart(host: UiHost | undefined): boolean {
  const roles = host?.identity?.roles ?? [];
  return host?.status === 'up' && (roles.includes('writer') || roles.includes('admin'));
}

export function canChange(host: UiHost | undefined, job: UiJob): boolean {
  const identity = host?.identity;
  if (host?.status !== 'up' || identity === null || identity === undefined) return false;
  return identity.roles.includes('admin') || (identity.roles.includes('writer') && identity.name === job.owner);
}

export function isAdmin(host: UiHost | undefined): boolean {
  return host?.identity?.roles.includes('admin') ?? false;
}
