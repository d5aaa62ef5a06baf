// Starting a job: the fields are job-cli start's flags (the UI server parses them with the same
// code), so the same values mean the same things; a refusal — the UI server's or the daemon's —
// is shown as job-cli would print it, next to the field whose flag it names.
import type { UiJob } from '../../src/cli/ui/protocol';
import { h, replace } from './dom';
import { api, jobPath } from './link';
import { canStart, isAdmin, type Store } from './store';

interface Field {
  flag: string;
  key: string;
  label: string;
  hint: string;
  lines?: boolean;
  adminOnly?: boolean;
}

const FIELDS: Field[] = [
  { flag: '--name', key: 'name', label: 'Name', hint: 'usable wherever the id is; unique among your jobs until removed' },
  { flag: '--label', key: 'label', label: 'Labels', hint: 'KEY=VALUE per line, to find the job by', lines: true },
  { flag: '--cpu', key: 'cpu', label: 'CPU', hint: 'CPUs: 0.5 is half of one' },
  { flag: '--cpu-weight', key: 'cpuWeight', label: 'CPU weight', hint: '1..10000 (default 100)' },
  { flag: '--memory', key: 'memory', label: 'Memory', hint: 'hard limit, e.g. 256M (1024-based)' },
  { flag: '--memory-high', key: 'memoryHigh', label: 'Memory high', hint: 'soft limit: throttled above it' },
  { flag: '--pids', key: 'pids', label: 'Processes', hint: 'most processes and threads' },
  { flag: '--io-read-bps', key: 'ioReadBps', label: 'Disk read rate', hint: 'DEV=RATE per line, e.g. /dev/sda=10M', lines: true },
  { flag: '--io-write-bps', key: 'ioWriteBps', label: 'Disk write rate', hint: 'DEV=RATE per line', lines: true },
  { flag: '--io-read-iops', key: 'ioReadIops', label: 'Disk reads/s', hint: 'DEV=N per line', lines: true },
  { flag: '--io-write-iops', key: 'ioWriteIops', label: 'Disk writes/s', hint: 'DEV=N per line', lines: true },
  { flag: '--env', key: 'env', label: 'Environment', hint: 'NAME=VALUE per line: the whole environment (none: just PATH)', lines: true },
  { flag: '--cwd', key: 'cwd', label: 'Directory', hint: "absolute, on the daemon's host (default: a scratch directory of the job's own)" },
  { flag: '--user', key: 'user', label: 'Run as', hint: 'UID[:GID] (admins only)', adminOnly: true },
  { flag: '--pool', key: 'pool', label: 'Pool', hint: 'run on whichever daemon of this pool has room' },
  { flag: '--retries', key: 'retries', label: 'Retries', hint: 'pool jobs: re-run up to N times (0..10) if its daemon is lost' },
];

export class StartPage {
  readonly element = h('section', { class: 'start-page' }, h('h2', {}, 'Start a job'));
  #stopWaiting: (() => void) | undefined;

  constructor(store: Store, preferredHost: string) {
    const note = h('p', {}, 'None of the connected daemons gives your certificate the writer or admin role.');
    const build = () => {
      const form = startForm(store, preferredHost);
      if (form === null) {
        if (!note.isConnected) this.element.append(note);
        return;
      }
      note.remove();
      this.element.append(form);
      this.#stopWaiting?.();
    };
    // The daemons' roles arrive with the first message: until one allows starting, wait for it.
    this.#stopWaiting = store.onChange(build);
    build();
  }

  dispose(): void {
    this.#stopWaiting?.();
  }
}

/** The form for the hosts that allow starting; null if none does. */
function startForm(store: Store, preferredHost: string): HTMLFormElement | null {
  const hosts = store.hosts.filter((host) => canStart(host));
  if (hosts.length === 0) return null;
  const hostSelect = h('select', { name: 'host' }, hosts.map((host) => h('option', { value: host.name, selected: host.name === preferredHost }, `${host.name} (${host.address}) as ${host.identity?.name ?? '?'}`)));
  const command = h('input', { name: 'command', 'data-flag': 'COMMAND', required: true, placeholder: 'sh', size: 30, autocomplete: 'off' });
  const args = h('textarea', { name: 'args', rows: 3, cols: 40, placeholder: '-c\necho hello; sleep 5' });
  const inputs = new Map<string, HTMLInputElement | HTMLTextAreaElement>();
  const rows = FIELDS.map((field) => {
    const input = field.lines === true ? h('textarea', { name: field.key, 'data-flag': field.flag, rows: 2, cols: 40 }) : h('input', { name: field.key, 'data-flag': field.flag, size: 20, autocomplete: 'off' });
    inputs.set(field.key, input);
    const row = h('label', { class: 'field', 'data-admin-only': field.adminOnly === true ? 'true' : null }, h('span', { class: 'label' }, field.label, h('code', {}, field.flag)), input, h('small', {}, field.hint));
    return row;
  });
  const showAdminFields = () => {
    const admin = isAdmin(store.host(hostSelect.value));
    for (const row of rows) if (row.dataset.adminOnly === 'true') row.hidden = !admin;
  };
  hostSelect.addEventListener('change', showAdminFields);
  showAdminFields();
  const error = h('p', { class: 'form-error', role: 'alert', 'data-role': 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Start');
  const form = h(
    'form',
    { class: 'start-form' },
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Daemon'), hostSelect),
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Command'), command, h('small', {}, 'run directly, never through a shell; looked up in PATH')),
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Arguments'), args, h('small', {}, 'one per line, exactly as written')),
    h('fieldset', {}, h('legend', {}, 'Limits and options (empty: the daemon\'s defaults)'), rows),
    error,
    h('div', { class: 'buttons' }, h('a', { href: '#/' }, 'Cancel'), submit),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    for (const element of form.querySelectorAll('.invalid')) element.classList.remove('invalid');
    const body: Record<string, string | string[]> = { command: [command.value, ...(args.value === '' ? [] : args.value.split('\n'))] };
    for (const field of FIELDS) {
      const value = inputs.get(field.key)!.value;
      if (value.trim() === '' || (field.adminOnly === true && !isAdmin(store.host(hostSelect.value)))) continue;
      body[field.key] = field.lines === true ? value.split('\n') : value;
    }
    submit.disabled = true;
    replace(error, 'Starting…');
    void api<{ job: UiJob }>('POST', jobPath(hostSelect.value), body).then((answer) => {
      submit.disabled = false;
      if (answer.ok) {
        location.hash = `#/jobs/${encodeURIComponent(hostSelect.value)}/${answer.body.job.id}`;
        return;
      }
      replace(error, answer.body.error ?? `failed (${answer.status})`);
      const flag = answer.body.field;
      const input = flag === null || flag === undefined ? null : form.querySelector<HTMLElement>(`[data-flag="${CSS.escape(flag)}"]`);
      input?.classList.add('invalid');
      input?.focus();
    });
  });
  return form;
}
