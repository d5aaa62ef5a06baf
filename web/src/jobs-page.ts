// Every job of every daemon, newest first, live: name, state, owner, command, times, and the
// resource use of running jobs over the last interval; filters by state, host, owner and text (kept
// in the URL): every word of the text must match: KEY=VALUE a label, any other word the job's text.
import type { UiHost, UiJob, UiRates } from '../../src/cli/ui/protocol';
import { h, replace } from './dom';
import { commandLine, durationMs, exitCell, formatAgo, formatBytes, formatDuration, formatLabels, formatPercent, formatRate, isFinished, isStoppable, poolPlace, shortId, truncate } from './format';
import { openStopDialog, removeJob } from './job-actions';
import { canChange, type ListedJob, type Store } from './store';

const MAX_ROWS = 1000;
const STATE_FILTERS: Record<string, (job: UiJob) => boolean> = {
  all: () => true,
  active: (job) => !isFinished(job),
  queued: (job) => job.state === 'queued',
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

/** What the text filter looks in: the host, the id, the name, the owner, the command line and the labels (as KEY=VALUE). */
function searchable(host: string, job: UiJob): string {
  const labels = Object.entries(job.labels).map(([key, value]) => `${key}=${value}`);
  return [host, job.id, job.name ?? '', job.owner, commandLine(job), ...labels].join(' ').toLowerCase();
}

/**
 * Whether a job matches every word of the text filter: a KEY=VALUE word, a job whose label KEY is
 * exactly VALUE (as `job-cli list --label`: case-sensitive); any other word, one found (in any case)
 * in what searchable() lists.
 */
function matchesText(words: readonly string[], host: string, job: UiJob): boolean {
  if (words.length === 0) return true;
  const text = searchable(host, job);
  return words.every((word) => {
    const at = word.indexOf('=');
    if (at > 0) return Object.hasOwn(job.labels, word.slice(0, at)) && job.labels[word.slice(0, at)] === word.slice(at + 1);
    return text.includes(word.toLowerCase());
  });
}

export class JobsPage {
  readonly element: HTMLElement;
  readonly #store: Store;
  readonly #body = h('tbody');
  readonly #rows = new Map<string, JobRow>();
  readonly #summary = h('p', { class: 'summary' });
  readonly #hostSelect = h('select', { name: 'host' });
  readonly #ownerSelect = h('select', { name: 'owner' });
  #filters: Filters;
  readonly #dispose: (() => void)[] = [];

  constructor(store: Store, filters: Filters) {
    this.#store = store;
    this.#filters = filters;
    const stateSelect = h('select', { name: 'state' }, Object.keys(STATE_FILTERS).map((name) => h('option', { value: name, selected: name === filters.state }, name)));
    const text = h('input', { name: 'q', type: 'search', placeholder: 'id, name, command, owner, label=value…', value: filters.text });
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
        h('thead', {}, h('tr', {}, ['Host', 'Job', 'Name', 'State', 'Owner', 'Command', 'Started', 'Duration', 'CPU', 'Memory', 'Disk read / write', 'Result', ''].map((title) => h('th', {}, title)))),
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
    const words = this.#filters.text.split(/\s+/).filter((word) => word !== '');
    const shown = all
      .filter(({ host, job, alsoOn }) => byState(job) && (this.#filters.host === '' || host === this.#filters.host || alsoOn.includes(this.#filters.host)) && (this.#filters.owner === '' || job.owner === this.#filters.owner) && matchesText(words, host, job))
      .sort((a, b) => (b.job.createdAt ?? '').localeCompare(a.job.createdAt ?? ''));
    const rows = shown.slice(0, MAX_ROWS).map((listed) => {
      const { host, job } = listed;
      const key = `${host}/${job.id}`;
      let row = this.#rows.get(key);
      if (row === undefined) this.#rows.set(key, (row = new JobRow(host, job.id)));
      row.update(listed, job.state === 'running' ? store.ratesOf(host, job.id) : undefined, store.host(host), now);
      return row.element;
    });
    const keep = new Set(rows);
    for (const [key, row] of this.#rows) if (!keep.has(row.element)) this.#rows.delete(key);
    // Touch the table only when its rows or their order change.
    const current = this.#body.children;
    if (current.length !== rows.length || rows.some((row, i) => current[i] !== row)) this.#body.replaceChildren(...rows);
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
}

/**
 * One job's row, kept while the job is listed and updated in place: a row rebuilt every second
 * would take a click away from under the pointer (the press on one button, the release on its
 * replacement).
 */
class JobRow {
  readonly element: HTMLTableRowElement;
  readonly #cells = new Map<string, HTMLTableCellElement>();
  readonly #idLink: HTMLAnchorElement;
  readonly #commandLink: HTMLAnchorElement;
  readonly #state = h('span', { class: 'state' });
  readonly #pool = h('div', { class: 'pool' });
  readonly #name = h('span', { 'data-role': 'name' });
  readonly #labels = h('div', { class: 'labels' });
  #actionsKey = '';

  constructor(host: string, id: string) {
    const link = `#/jobs/${encodeURIComponent(host)}/${id}`;
    this.#idLink = h('a', { href: link, title: id }, shortId(id));
    this.#commandLink = h('a', { href: link });
    const cell = (name: string, className?: string, content?: Node | string) => {
      const element = h('td', { 'data-col': name, class: className ?? null }, content);
      this.#cells.set(name, element);
      return element;
    };
    this.element = h(
      'tr',
      { 'data-host': host, 'data-job': id },
      cell('host', undefined, h('span', {}, host, this.#pool)),
      cell('id', 'mono', this.#idLink),
      cell('name', undefined, h('span', {}, this.#name, this.#labels)),
      cell('state', undefined, this.#state),
      cell('owner'),
      cell('command', 'mono', this.#commandLink),
      cell('started'),
      cell('duration'),
      cell('cpu', 'num'),
      cell('memory', 'num'),
      cell('io', 'num'),
      cell('result'),
      cell('actions', 'actions'),
    );
  }

  update({ host, job, alsoOn }: ListedJob, rates: UiRates | undefined, hostView: UiHost | undefined, now: number): void {
    const duration = durationMs(job, now);
    const memoryLimit = job.limits.memoryBytes;
    this.element.dataset.state = job.state;
    setText(this.#state, job.state);
    this.#state.className = `state state-${job.state}`;
    setText(this.#pool, job.pool === null ? '' : poolPlace(job.pool));
    this.#cells.get('host')!.title = alsoOn.length === 0 ? '' : `a pool job: ${alsoOn.join(', ')} list${alsoOn.length === 1 ? 's' : ''} it too`;
    setText(this.#name, job.name ?? '');
    setText(this.#labels, formatLabels(job.labels));
    setText(this.#cells.get('owner')!, job.owner);
    setText(this.#commandLink, truncate(commandLine(job), 60));
    this.#cells.get('command')!.title = commandLine(job);
    setText(this.#cells.get('started')!, job.startedAt === null ? '-' : formatAgo(new Date(job.startedAt), new Date(now)));
    setText(this.#cells.get('duration')!, duration === null ? '-' : formatDuration(duration));
    setText(this.#cells.get('cpu')!, rates?.cpuPercent == null ? '' : formatPercent(rates.cpuPercent));
    setText(this.#cells.get('memory')!, rates === undefined ? '' : `${formatBytes(rates.memoryBytes)}${memoryLimit === null ? '' : ` / ${formatBytes(memoryLimit)}`}`);
    setText(this.#cells.get('io')!, rates?.ioReadBytesPerSecond == null || rates.ioWriteBytesPerSecond === null ? '' : `${formatRate(rates.ioReadBytesPerSecond)} / ${formatRate(rates.ioWriteBytesPerSecond)}`);
    setText(this.#cells.get('result')!, isFinished(job) ? exitCell(job) : '');
    this.#cells.get('result')!.title = job.reason ?? '';
    const allowed = canChange(hostView, job);
    const key = `${allowed}/${job.state}`;
    if (key === this.#actionsKey) return;
    this.#actionsKey = key;
    replace(
      this.#cells.get('actions')!,
      allowed && isStoppable(job) ? h('button', { class: 'stop', onclick: () => openStopDialog(host, job) }, 'Stop') : null,
      allowed && isFinished(job) ? h('button', { class: 'remove', onclick: () => void removeJob(host, job).then((refusal) => refusal !== null && alert(refusal)) }, 'Remove') : null,
    );
  }
}

function setText(element: HTMLElement, text: string): void {
  if (element.textContent !== text) element.textContent = text;
}
