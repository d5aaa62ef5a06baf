// One job: its record, its charts and its output, live; stop or remove it where the role allows.
import type { UiJob } from '../../src/cli/ui/protocol';
import { h, replace } from './dom';
import { isFinished, isStoppable, shortId } from './format';
import { JobCharts } from './job-charts';
import { openStopDialog, removeJob } from './job-actions';
import { renderRecord } from './job-record';
import type { Link } from './link';
import { LogView } from './log-view';
import { canChange, type Store } from './store';

export class JobPage {
  readonly element: HTMLElement;
  readonly #store: Store;
  readonly #link: Link;
  readonly #host: string;
  readonly #id: string;
  readonly #title = h('h2');
  readonly #actions = h('div', { class: 'actions' });
  readonly #message = h('p', { class: 'page-error', role: 'alert' });
  readonly #record = h('div', { class: 'record-box' });
  readonly #log: LogView;
  readonly #dispose: (() => void)[] = [];
  #charts: JobCharts | undefined;
  #sub: number | undefined;
  #job: UiJob | undefined;
  #actionsKey = '';

  constructor(store: Store, link: Link, host: string, id: string) {
    this.#store = store;
    this.#link = link;
    this.#host = host;
    this.#id = id;
    this.#log = new LogView(link, host, id);
    this.#dispose.push(() => this.#log.dispose());
    const chartsSlot = h('div', { class: 'charts-slot' });
    this.element = h(
      'section',
      { class: 'job-page', 'data-job': id, 'data-host': host },
      h('div', { class: 'job-header' }, h('a', { href: '#/', class: 'back' }, '← all jobs'), this.#title, this.#actions),
      this.#message,
      h('div', { class: 'job-body' }, this.#record, chartsSlot),
      h('h3', {}, 'Output'),
      this.#log.element,
    );
    this.#dispose.push(
      link.onState((state) => {
        if (state === 'live') this.#watch();
        else this.#sub = undefined;
      }),
      link.onMessage((message) => {
        if (message.type === 'job-detail' && message.sub === this.#sub) {
          this.#show(message.job);
          this.#chartsIn(chartsSlot, message.job).set(message.job, message.samples);
        } else if (message.type === 'sample' && message.sub === this.#sub) {
          this.#charts?.add(message.sample);
        } else if (message.type === 'job' && message.host === host && message.job.id === id) {
          this.#show(message.job);
          this.#charts?.updateJob(message.job);
        } else if (message.type === 'job-removed' && message.host === host && message.id === id) {
          replace(this.#message, 'This job was removed.');
        } else if (message.type === 'sub-error' && message.sub === this.#sub) {
          replace(this.#message, message.message);
        }
      }),
      store.onChange(() => this.#renderActions()),
    );
    replace(this.#title, `Job ${shortId(id)} on ${host}`);
    const known = store.job(host, id);
    if (known !== undefined) this.#show(known);
  }

  dispose(): void {
    if (this.#sub !== undefined) this.#link.send({ type: 'cancel', sub: this.#sub });
    for (const dispose of this.#dispose.splice(0)) dispose();
    this.#charts?.dispose();
  }

  #watch(): void {
    this.#sub = this.#link.newSub();
    this.#link.send({ type: 'watch-job', sub: this.#sub, host: this.#host, job: this.#id });
  }

  #chartsIn(slot: HTMLElement, job: UiJob): JobCharts {
    if (this.#charts === undefined) {
      this.#charts = new JobCharts(job);
      slot.append(this.#charts.element);
    }
    return this.#charts;
  }

  #show(update: UiJob): void {
    const job = this.#withEveryArgument(update);
    this.#job = job;
    replace(this.#title, `Job ${shortId(job.id)} on ${this.#host} `, h('span', { class: `state state-${job.state}`, 'data-role': 'state' }, job.state));
    replace(this.#record, renderRecord(job, new Date()));
    this.#renderActions();
  }

  /**
   * A listing's record (the watch's, a stop's answer) carries only a big job's leading arguments
   * (argsOmitted says how many follow); the page keeps every one GetJob gave it.
   */
  #withEveryArgument(job: UiJob): UiJob {
    const known = this.#job;
    if (job.argsOmitted === 0 || known === undefined || known.argsOmitted !== 0) return job;
    return { ...job, args: known.args, argsOmitted: 0 };
  }

  #renderActions(): void {
    const job = this.#job;
    const allowed = job !== undefined && canChange(this.#store.host(this.#host), job);
    // Rebuilt only when they change: a button replaced under the pointer loses the click.
    const key = `${allowed}/${job?.state}`;
    if (key === this.#actionsKey) return;
    this.#actionsKey = key;
    if (job === undefined || !allowed) {
      replace(this.#actions);
      return;
    }
    replace(
      this.#actions,
      isStoppable(job) ? h('button', { class: 'stop danger', onclick: () => openStopDialog(this.#host, job) }, 'Stop…') : null,
      isFinished(job)
        ? h('button', {
            class: 'remove',
            onclick: () =>
              void removeJob(this.#host, job).then((refusal) => {
                if (refusal === null) location.hash = '#/';
                else replace(this.#message, refusal);
              }),
          }, 'Remove')
        : null,
    );
  }
}
