// Live resource use of one daemon's jobs, read with the user's own GetJob calls (list and watch
// carry no live stats): every second for the jobs whose page is open, every two seconds for all
// running jobs while any page is connected; nothing while no page is. At most 8 calls at a time;
// a round that is still running when the next is due makes that one wait (many jobs: slower
// rounds, never a pile-up). Each reading is added to the job's samples (the charts); a finished
// job gets its final stats as a last sample.
import type { JobView } from '../../client';
import { isFinished } from '../job-cli/job-report';
import type { HostConnection } from './host-connection';
import { JobSamples } from './job-samples';
import type { UiRates, UiSample } from './protocol';

const TICK_MS = 1000;
const CONCURRENT_CALLS = 8;
/** Jobs whose samples are kept (the least recently read go first). */
const MAX_JOBS_WITH_SAMPLES = 500;

export type SamplerEvent = { type: 'rates'; rates: Record<string, UiRates> } | { type: 'sample'; job: string; sample: UiSample };

export class ResourceSampler {
  readonly #host: HostConnection;
  readonly #samples = new Map<string, JobSamples>();
  readonly #watched = new Map<string, number>();
  readonly #listeners = new Set<(event: SamplerEvent) => void>();
  #viewers = 0;
  #tick = 0;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #unsubscribe: () => void;

  constructor(host: HostConnection) {
    this.#host = host;
    this.#unsubscribe = host.subscribe((event) => {
      if (event.type === 'job' && isFinished(event.job)) this.#finished(event.job);
      if (event.type === 'job-removed') this.#samples.delete(event.id);
    });
  }

  subscribe(listener: (event: SamplerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A page is connected: sample every running job. Returns the release. */
  addViewer(): () => void {
    this.#viewers++;
    this.#schedule();
    return once(() => {
      this.#viewers--;
      this.#schedule();
    });
  }

  /** A job's page is open: sample it every second. Returns the release. */
  watchJob(id: string): () => void {
    this.#watched.set(id, (this.#watched.get(id) ?? 0) + 1);
    this.#schedule();
    return once(() => {
      const count = (this.#watched.get(id) ?? 1) - 1;
      if (count === 0) this.#watched.delete(id);
      else this.#watched.set(id, count);
      this.#schedule();
    });
  }

  samplesOf(id: string): readonly UiSample[] {
    return this.#samples.get(id)?.samples ?? [];
  }

  /** A reading taken elsewhere (the record a page asked for): a sample, or the final one. */
  record(job: JobView): void {
    if (isFinished(job)) this.#finished(job);
    else this.#live(job);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe();
  }

  #schedule(): void {
    const wanted = this.#viewers > 0 || this.#watched.size > 0;
    if (wanted && this.#timer === undefined) this.#timer = setInterval(() => this.#onTick(), TICK_MS);
    if (!wanted && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #onTick(): void {
    if (this.#round !== undefined) return;
    this.#tick++;
    const running = this.#host.jobs().filter((job) => job.state === 'running').map((job) => job.id);
    const ids = this.#viewers > 0 && this.#tick % 2 === 0 ? running : running.filter((id) => this.#watched.has(id));
    if (ids.length === 0) return;
    this.#round = this.#read(ids).finally(() => {
      this.#round = undefined;
    });
  }

  async #read(ids: string[]): Promise<void> {
    let client;
    try {
      client = this.#host.client();
    } catch {
      return; // down: nothing to read
    }
    const rates: Record<string, UiRates> = {};
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        // NOT_FOUND: removed meanwhile; anything else is the watch's to report (same connection),
        // and a missed reading is only a gap in a chart.
        const job = await client.getJob(id).catch(() => undefined);
        if (job === undefined) continue;
        if (isFinished(job)) {
          this.#finished(job);
          continue;
        }
        const rate = this.#live(job);
        if (rate !== undefined) rates[id] = rate;
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENT_CALLS, ids.length) }, worker));
    if (Object.keys(rates).length > 0) this.#emit({ type: 'rates', rates });
  }

  #live(job: JobView): UiRates | undefined {
    const sample = this.#samplesFor(job.id).addLive(job, Date.now());
    if (sample === undefined) return undefined;
    this.#emit({ type: 'sample', job: job.id, sample });
    const { time: _time, ...rates } = sample;
    return rates;
  }

  #finished(job: JobView): void {
    if (!this.#samples.has(job.id) && !this.#watched.has(job.id)) return;
    const sample = this.#samplesFor(job.id).addFinal(job);
    if (sample !== undefined) this.#emit({ type: 'sample', job: job.id, sample });
  }

  #samplesFor(id: string): JobSamples {
    let samples = this.#samples.get(id);
    if (samples === undefined) {
      samples = new JobSamples();
      if (this.#samples.size >= MAX_JOBS_WITH_SAMPLES) this.#samples.delete(this.#samples.keys().next().value!);
    } else {
      this.#samples.delete(id); // re-inserted last: the map's order is the order of use
    }
    this.#samples.set(id, samples);
    return samples;
  }

  #emit(event: SamplerEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}

function once(action: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      action();
    }
  };
}
