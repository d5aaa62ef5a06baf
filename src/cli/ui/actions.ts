// What the page can make a daemon do: start, stop, remove — each the user's own call with their own
// certificate, so the daemon decides (a reader's start is refused there, whatever the page shows).
// The form's fields are job-cli start's flags, parsed by the same code, so the same values mean the
// same thing and a bad one gets the same message naming the same flag; the daemon's refusals are
// shown as job-cli shows them (its field names turned into flags).
import * as t from 'typanion';

import { ClientError, StatusCode } from '../../client';
import { CliError } from '../run';
import { describeCallError } from '../job-cli/errors';
import { buildStartRequest, type JobSpecFlags } from '../job-cli/start-request';
import { parseStopOptions } from '../job-cli/stop';
import type { HostConnection } from './host-connection';
import type { UiJob } from './protocol';
import { toUiJob } from './ui-job';

const optionalText = t.isOptional(t.isString());
const optionalList = t.isOptional(t.isArray(t.isString()));

/** The start form: job-cli start's flags, as text. */
export const isStartForm = t.isObject({
  command: t.isArray(t.isString()),
  cpu: optionalText,
  cpuWeight: optionalText,
  memory: optionalText,
  memoryHigh: optionalText,
  pids: optionalText,
  ioReadBps: optionalList,
  ioWriteBps: optionalList,
  ioReadIops: optionalList,
  ioWriteIops: optionalList,
  env: optionalList,
  cwd: optionalText,
  user: optionalText,
  pool: optionalText,
  retries: optionalText,
  name: optionalText,
  label: optionalList,
});

export const isStopForm = t.isObject({ signal: optionalText, grace: optionalText });

/** An answer the page shows next to the form: the message, and the flag (form field) it is about. */
export class ActionError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

const STATUS_FOR_CODE: Partial<Record<number, number>> = {
  [StatusCode.INVALID_ARGUMENT]: 400,
  [StatusCode.PERMISSION_DENIED]: 403,
  [StatusCode.UNAUTHENTICATED]: 403,
  [StatusCode.NOT_FOUND]: 404,
  [StatusCode.FAILED_PRECONDITION]: 409,
  [StatusCode.RESOURCE_EXHAUSTED]: 429,
  [StatusCode.UNAVAILABLE]: 503,
  [StatusCode.DEADLINE_EXCEEDED]: 504,
};

/** A failure as the page shows it: job-cli's line (and hint), an HTTP status, the flag it names. */
export function toActionError(error: unknown, host: HostConnection): ActionError {
  if (error instanceof ActionError) return error;
  let status = 502;
  let described: CliError;
  if (error instanceof ClientError) {
    status = STATUS_FOR_CODE[error.code] ?? 502;
    described = describeCallError(error, host.connection);
  } else if (error instanceof CliError) {
    status = error.exitCode === 2 ? 400 : 503; // a usage error, or the host is not up
    described = error;
  } else {
    throw error;
  }
  const field = /^(--[a-z-]+|COMMAND):/.exec(described.message)?.[1] ?? null;
  return new ActionError(status, described.hint === undefined ? described.message : `${described.message} (hint: ${described.hint})`, field);
}

function checked<T>(value: unknown, is: t.StrictValidator<unknown, T>, what: string): T {
  const errors: string[] = [];
  if (!is(value, { errors })) throw new ActionError(400, `${what}: ${errors.join('; ')}`);
  return value;
}

/** A form's empty fields and lines are flags not given. */
function withoutBlanks(form: JobSpecFlags): JobSpecFlags {
  const text = (value: string | undefined) => (value === undefined || value.trim() === '' ? undefined : value.trim());
  const lines = (values: string[] | undefined) => {
    const kept = values?.filter((line) => line.trim() !== '');
    return kept === undefined || kept.length === 0 ? undefined : kept;
  };
  return {
    command: form.command,
    cpu: text(form.cpu),
    cpuWeight: text(form.cpuWeight),
    memory: text(form.memory),
    memoryHigh: text(form.memoryHigh),
    pids: text(form.pids),
    ioReadBps: lines(form.ioReadBps)?.map((line) => line.trim()),
    ioWriteBps: lines(form.ioWriteBps)?.map((line) => line.trim()),
    ioReadIops: lines(form.ioReadIops)?.map((line) => line.trim()),
    ioWriteIops: lines(form.ioWriteIops)?.map((line) => line.trim()),
    env: lines(form.env), // values may mean their spaces
    cwd: text(form.cwd),
    user: text(form.user),
    pool: text(form.pool),
    retries: text(form.retries),
    name: text(form.name),
    label: lines(form.label)?.map((line) => line.trim()),
  };
}

export async function startJob(host: HostConnection, body: unknown): Promise<UiJob> {
  const form = withoutBlanks(checked(body, isStartForm, 'start form'));
  try {
    const request = buildStartRequest(form);
    const job = await host.client().startJob(request);
    host.update(job);
    return toUiJob(job);
  } catch (error) {
    throw toActionError(error, host);
  }
}

export async function stopJob(host: HostConnection, id: string, body: unknown): Promise<{ alreadyFinished: boolean; job: UiJob }> {
  const form = checked(body, isStopForm, 'stop form');
  try {
    const options = parseStopOptions(form.signal === '' ? undefined : form.signal, form.grace === '' ? undefined : form.grace);
    const result = await host.client().stopJob(id, options);
    host.update(result.job);
    return { alreadyFinished: result.alreadyFinished, job: toUiJob(result.job) };
  } catch (error) {
    throw toActionError(error, host);
  }
}

export async function removeJob(host: HostConnection, id: string): Promise<void> {
  try {
    await host.client().removeJob(id);
    host.forget(id);
  } catch (error) {
    throw toActionError(error, host);
  }
}
