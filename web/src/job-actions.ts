// Stop (with a signal and a grace period) and remove, as the page offers them: only where the
// identity's roles allow (store.canChange); the daemon decides anyway, and its answer is shown.
import type { UiJob } from '../../src/cli/ui/protocol';
import { h, replace } from './dom';
import { shortId } from './format';
import { api, jobPath } from './link';

const SIGNALS = ['TERM', 'INT', 'HUP', 'QUIT', 'KILL', 'USR1', 'USR2'];

/** A dialog asking for the signal and the grace period, then StopJob. */
export function openStopDialog(host: string, job: UiJob): void {
  const error = h('p', { class: 'form-error', role: 'alert' });
  const signal = h('select', { name: 'signal' }, SIGNALS.map((name) => h('option', { value: name }, `SIG${name}`)));
  const grace = h('input', { name: 'grace', placeholder: "the daemon's (10s)", size: 14 });
  const submit = h('button', { type: 'submit', class: 'danger' }, 'Stop');
  const dialog = h(
    'dialog',
    { class: 'stop-dialog' },
    h(
      'form',
      { method: 'dialog' },
      h('h3', {}, `Stop job ${shortId(job.id)} on ${host}`),
      h('p', {}, 'Sends the signal to every process of the job, waits the grace period, then kills what is left.'),
      h('label', {}, 'Signal ', signal),
      h('label', {}, 'Grace ', grace),
      error,
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), submit),
    ),
  );
  dialog.querySelector('form')!.addEventListener('submit', (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(error, 'Stopping…');
    void api(`POST`, `${jobPath(host, job.id)}/stop`, { signal: signal.value, grace: grace.value }).then((answer) => {
      submit.disabled = false;
      if (answer.ok) dialog.close();
      else replace(error, answer.body.error ?? `failed (${answer.status})`);
    });
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

/** Asks, then RemoveJob; resolves with the daemon's refusal, or null. */
export async function removeJob(host: string, job: UiJob): Promise<string | null> {
  if (!confirm(`Remove job ${shortId(job.id)} (${job.command}) and its log from ${host}?`)) return null;
  const answer = await api('DELETE', jobPath(host, job.id));
  return answer.ok ? null : (answer.body.error ?? `failed (${answer.status})`);
}
