// The page: a header with each daemon's status, and one of three views chosen by the URL's
// fragment — #/ (every job), #/jobs/HOST/ID (one job), #/start (the start form).
import '@xterm/xterm/css/xterm.css';
import './style.css';

import { h, replace } from './dom';
import { formatDuration } from './format';
import { filtersFrom, JobsPage } from './jobs-page';
import { JobPage } from './job-page';
import { Link, takeSession, type LinkState } from './link';
import { StartPage } from './start-page';
import { canStart, Store } from './store';

interface Page {
  element: HTMLElement;
  dispose(): void;
}

const link = new Link();
const store = new Store(link);
const hostsBar = h('nav', { class: 'hosts', 'aria-label': 'daemons' });
const linkBadge = h('span', { class: 'link', 'data-role': 'link' });
const startLink = h('a', { href: '#/start', class: 'button primary', 'data-role': 'start' }, 'Start a job');
const main = h('main');
let page: Page | undefined;

document.body.append(h('header', {}, h('a', { href: '#/', class: 'brand' }, 'jobworker'), hostsBar, startLink, linkBadge), main);

function renderHeader(): void {
  const now = Date.now();
  replace(
    hostsBar,
    store.hosts.map((host) => {
      const title = host.status === 'down' ? `${host.error ?? 'down'}${host.retryAt === null ? '' : ` — next try in ${formatDuration(Math.max(0, host.retryAt - now))}`}` : `${host.address}${host.identity === null ? '' : ` as ${host.identity.name} (${host.identity.roles.join(', ') || 'no role'})`}`;
      return h('span', { class: `host host-${host.status}`, title, 'data-host': host.name, 'data-status': host.status }, host.name, host.status === 'up' ? '' : ` · ${host.status}`);
    }),
  );
  startLink.hidden = !store.hosts.some((host) => canStart(host));
}

function showLink(state: LinkState): void {
  linkBadge.dataset.state = state;
  replace(linkBadge, state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'reconnecting…');
}

function route(): void {
  page?.dispose();
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path = '/', query = ''] = hash.split('?');
  const job = /^\/jobs\/([^/]+)\/([0-9a-f-]{36})$/.exec(path);
  if (job !== null) page = new JobPage(store, link, decodeURIComponent(job[1]!), job[2]!);
  else if (path === '/start') page = new StartPage(store, new URLSearchParams(query).get('host') ?? '');
  else page = new JobsPage(store, filtersFrom(new URLSearchParams(query)));
  replace(main, page.element);
}

if (takeSession()) {
  store.onChange(renderHeader);
  setInterval(renderHeader, 1000);
  link.onState(showLink);
  window.addEventListener('hashchange', route);
  link.connect();
  route();
} else {
  // Opened without the token (and never with it in this browser): nothing to show.
  startLink.hidden = true;
  replace(main, h('p', { class: 'signed-out', 'data-role': 'signed-out' }, 'Not signed in: open the URL job-cli ui printed (it carries the access token).'));
}
