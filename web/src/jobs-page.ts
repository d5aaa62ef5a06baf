// Every job of every daemon, newest first, live: state, owner, command, times, and the resource use
// of running jobs over the last interval; filters by state, host, owner and text (kept in the URL).
import type { UiJob } from '../../src/cli/ui/protocol';
import { h, replace } from './dom';
import { commandLine, durationMs, exitCell, formatAgo, formatBytes, formatDuration, formatPercent, formatRate, isFinished, shortId, truncate } from './format';
import { openStopDialog, removeJob } from './job-actions';
import { canChange, type Store } from './store';

const MAX_ROWS = 1000;
const STATE_FILTERS: Record<string, (job: UiJob) => boolean> = {
  all: () => true,
  active: (job) => job.state === 'starting' || job.state === 'running',
  finished: (job) => isFinished(job),
  running: (job) => job.state === 'running',
  exited: (job) => job.state === 'exited',
  failed: (job) => job.state === 'failed',
  stopped: (job) => job.state === 'stopped',
  lost: (job) => job.state === 'lost',
};

export interface Filters {
  state: string;
  host: string;
  owner: string;
  text: string;
}

export function filtersFrom(query: URLSearchParams): Filters {
  return { state: query.get('state') ?? 'all', host: query.get('host') ?? '', owner: query.get('owner') ?? '', text: query.get('q') ?? '' };
}

/** What the text filter looks in: the id, the command line, the owner, and a name or labels if a daemon sends them. */
function searchable(host: string, job: UiJob): string {
  const extra = [job['name'], job['labels']].filter((value) => value !== undefined && value !== null).map((value) => JSON.stringify(value));
  return [host, job.id, job.owner, commandLine(job), ...extra].join(' ').toLowerCase();
}

export class JobsPage {
  readonly element: HTMLElement;
  readonly #store: Store;
  readonly #body = h('tbody');
  readonly #summary = h('p', { class: 'summary' });
  readonly #hostSelect = h('select', { name: 'host' });
  readonly #ownerSelect = h('select', { name: 'owner' });
  #filters: Filters;
  readonly #dispose: (() => void)[] = [];

  constructor(store: Store, filters: Filters) {
    this.#store = store;
    this.#filters = filters;
    const stateSelect = h('select', { name: 'state' }, Object.keys(STATE_FILTERS).map((name) => h('option', { value: name, selected: name === filters.state }, name)));
    const text = h('input', { name: 'q', type: 'search', placeholder: 'id, command, owner…', value: filters.text });
    const onChange = () => {
      this.#filters = { state: stateSelect.value, host: this.#hostSelect.value, owner: this.#ownerSelect.value, text: text.value };
      const query = new URLSearchParams(Object.entries({ state: this.#filters.state === 'all' ? '' : this.#filters.state, host: this.#filters.host, owner: this.#filters.owner, q: this.#filters.text }).filter(([, value]) => value !== ''));
      history.replaceState(null, '', `#/${query.size > 0 ? `?${query}` : ''}`);
      this.render();
    };
    for (const input of [stateSelect, this.#hostSelect, this.#ownerSelect]) input.addEventListener('change', onChange);
    text.addEventListener('input', onChange);
    this.element = h(
      'section',
      { class: 'jobs-page' },
      h('div', { class: 'filters' }, h('label', {}, 'State ', stateSelect), h('label', {}, 'Host ', this.#hostSelect), h('label', {}, 'Owner ', this.#ownerSelect), h('label', {}, 'Search ', text)),
      h(
        'table',
        { class: 'jobs' },
        h('thead', {}, h('tr', {}, ['Host', 'Job', 'State', 'Owner', 'Command', 'Started', 'Duration', 'CPU', 'Memory', 'Disk read / write', 'Result', ''].map((title) => h('th', {}, title)))),
        this.#body,
      ),
      this.#summary,
    );
    this.#dispose.push(store.onChange(() => this.render()));
    const timer = setInterval(() => this.render(), 1000); // durations and "ago" move on
    this.#dispose.push(() => clearInterval(timer));
    this.render();
  }

  dispose(): void {
    for (const dispose of this.#dispose.splice(0)) dispose();
  }

  render(): void {
    const now = Date.now();
    const store = this.#store;
    const all = store.allJobs();
    this.#options(this.#hostSelect, store.hosts.map((host) => host.name), this.#filters.host);
    this.#options(this.#ownerSelect, [...new Set(all.map(({ job }) => job.owner))].sort(), this.#filters.owner);
    const byState = STATE_FILTERS[this.#filters.state] ?? STATE_FILTERS.all!;
    const text = this.#filters.text.trim().toLowerCase();
    const shown = all
      .filter(({ host, job }) => byState(job) && (this.#filters.host === '' || host === this.#filters.host) && (this.#filters.owner === '' || job.owner === this.#filters.owner) && (text === '' || searchable(host, job).includes(text)))
      .sort((a, b) => (b.job.createdAt ?? '').localeCompare(a.job.createdAt ?? ''));
    replace(this.#body, shown.slice(0, MAX_ROWS).map(({ host, job }) => this.#row(host, job, now)));
    const down = store.hosts.filter((host) => host.status !== 'up').map((host) => host.name);
    replace(
      this.#summary,
      `${shown.length} of ${all.length} jobs`,
      shown.length > MAX_ROWS ? ` (the newest ${MAX_ROWS} shown: narrow the filters)` : '',
      down.length > 0 ? ` · not shown: the jobs of ${down.join(', ')} (not connected)` : '',
    );
  }

  #options(select: HTMLSelectElement, values: string[], selected: string): void {
    const wanted = ['', ...values];
    if (selected !== '' && !values.includes(selected)) wanted.push(selected);
    if (select.options.length === wanted.length && [...select.options].every((option, i) => option.value === wanted[i])) return;
    replace(select, wanted.map((value) => h('option', { value, selected: value === selected }, value === '' ? 'all' : value)));
  }

  #row(host: string, job: UiJob, now: number): HTMLTableRowElement {
    const rates = job.state === 'running' ? this.#store.ratesOf(host, job.id) : undefined;
    const hostView = this.#store.host(host);
    const duration = durationMs(job, now);
    const memoryLimit = job.limits.memoryBytes;
    const memory = rates === undefined ? '' : `${formatBytes(rates.memoryBytes)}${memoryLimit === null ? '' : ` / ${formatBytes(memoryLimit)}`}`;
    const io = rates?.ioReadBytesPerSecond == null || rates.ioWriteBytesPerSecond === null ? '' : `${formatRate(rates.ioReadBytesPerSecond)} / ${formatRate(rates.ioWriteBytesPerSecond)}`;
    const actions: HTMLElement[] = [];
    if (canChange(hostView, job) && job.state === 'running') actions.push(h('button', { class: 'stop', onclick: () => openStopDialog(host, job) }, 'Stop'));
    if (canChange(hostView, job) && isFinished(job)) {
      actions.push(
        h('button', {
          class: 'remove',
          onclick: () => void removeJob(host, job).then((refusal) => refusal !== null && alert(refusal)),
        }, 'Remove'),
      );
    }
    const link = `#/jobs/${encodeURIComponent(host)}/${job.id}`;
    return h(
      'tr',
      { 'data-host': host, 'data-job': job.id, 'data-state': job.state },
      h('td', { 'data-col': 'host' }, host),
      h('td', { 'data-col': 'id', class: 'mono' }, h('a', { href: link, title: job.id }, shortId(job.id))),
      h('td', { 'data-col': 'state' }, h('span', { class: `state state-${job.state}` }, job.state)),
      h('td', { 'data-col': 'owner' }, job.owner),
      h('td', { 'data-col': 'command', class: 'mono', title: commandLine(job) }, h('a', { href: link }, truncate(commandLine(job), 60))),
      h('td', { 'data-col': 'started', title: job.startedAt ?? '' }, job.startedAt === null ? '-' : formatAgo(new Date(job.startedAt), new Date(now))),
      h('td', { 'data-col': 'duration' }, duration === null ? '-' : formatDuration(duration)),
      h('td', { 'data-col': 'cpu', class: 'num' }, rates?.cpuPercent == null ? '' : formatPercent(rates.cpuPercent)),
      h('td', { 'data-col': 'memory', class: 'num' }, memory),
      h('td', { 'data-col': 'io', class: 'num' }, io),
      h('td', { 'data-col': 'result', title: job.reason ?? '' }, isFinished(job) ? exitCell(job) : ''),
      h('td', { 'data-col': 'actions', class: 'actions' }, actions),
    );
  }
}
