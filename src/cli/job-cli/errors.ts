// The daemon's answers and connection failures as one line for people, plus a hint where one helps
// (which role a call needs, how to start a daemon, which flag a server-side complaint is about).
// Pure: the command passes the connection it used.
import { ClientError, StatusCode, TlsMaterialError } from '../../client/basics';
import { CliError, EXIT_ERROR, EXIT_USAGE } from '../run';
import { DEFAULT_ADDRESS, type ResolvedConnection } from './connection';
import { formatDuration } from './units';

/** The roles that may make each call (docs/security.md has the matrix). */
const ROLES_FOR: Record<string, string> = {
  StartJob: 'writer or admin',
  StopJob: 'writer or admin',
  RemoveJob: 'writer or admin',
};

/** Request fields of the API, as the flags that set them. */
const FLAG_FOR_FIELD: [RegExp, string][] = [
  [/^limits\.cpu_weight\b/, '--cpu-weight'],
  [/^limits\.cpu\b/, '--cpu'],
  [/^limits\.memory_high_bytes\b/, '--memory-high'],
  [/^limits\.memory_bytes\b/, '--memory'],
  [/^limits\.pids\b/, '--pids'],
  [/^limits\.io\[\d+\]\.read_bytes_per_second\b/, '--io-read-bps'],
  [/^limits\.io\[\d+\]\.write_bytes_per_second\b/, '--io-write-bps'],
  [/^limits\.io\[\d+\]\.read_iops\b/, '--io-read-iops'],
  [/^limits\.io\[\d+\]\.write_iops\b/, '--io-write-iops'],
  [/^limits\.io\[\d+\]\.device\b/, 'the device of an --io-* flag'],
  [/^env\b/, '--env'],
  [/^cwd\b/, '--cwd'],
  [/^(user|user_name|group_name)\b/, '--user'],
  [/^network\b/, '--network'],
  [/^mounts\b/, '--mount'],
  [/^read_only_root\b/, '--read-only'],
  [/^host_namespaces\b/, '--host-namespace'],
  [/^grace_ms\b/, '--grace'],
  [/^max_runtime_ms\b/, '--max-runtime'],
  [/^name\b/, '--name'],
  [/^(labels|label_selector)\b/, '--label'],
  [/^signal\b/, '--signal'],
  [/^tail_lines\b/, '--tail'],
  [/^since_unix_micros\b/, '--since'],
];

/**
 * Names the flag instead of the API field, where the message starts and wherever else it names one:
 * "limits.memory_high_bytes: must not exceed the hard limit limits.memory_bytes (…)" →
 * "--memory-high: must not exceed the hard limit --memory (…)".
 */
export function withFlagNames(details: string): string {
  const colon = details.indexOf(': ');
  if (colon < 0) return details;
  const field = details.slice(0, colon);
  const flag = FLAG_FOR_FIELD.find(([pattern]) => pattern.test(field))?.[1];
  let reason = details.slice(colon + 2);
  // Inside the text only API names (dotted or with "_") are renamed: plain words such as "user" or
  // "network" are also English ("no user named x").
  for (const [pattern, name] of FLAG_FOR_FIELD) {
    reason = reason.replace(new RegExp(pattern.source.replace(/^\^/, '\\b'), 'g'), (found) => (/[._]/.test(found) ? name : found));
  }
  return `${flag ?? field}: ${reason}`;
}

/** sh's exit statuses for a command that is not found, and one that is found but cannot run. */
export const EXIT_COMMAND_NOT_FOUND = 127;
export const EXIT_COMMAND_NOT_EXECUTABLE = 126;

/** The daemon's "command: not found: …" / "command: not executable: …" (docs/api.md) as sh would exit. */
function describeCommandError(details: string): CliError | undefined {
  const notFound = /^command: not found: (.*)$/s.exec(details)?.[1];
  if (notFound !== undefined) {
    return new CliError(`command not found: ${notFound}`, 'give its full path, or a PATH that has it (--env PATH=…)', EXIT_COMMAND_NOT_FOUND);
  }
  const notExecutable = /^command: not executable: (.*)$/s.exec(details)?.[1];
  if (notExecutable !== undefined) return new CliError(`command not executable: ${notExecutable}`, undefined, EXIT_COMMAND_NOT_EXECUTABLE);
  return undefined;
}

/** "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1 (2024-…)" → "connect ECONNREFUSED 127.0.0.1:1". */
export function connectionFailureReason(details: string): string {
  const last = /Last error: (?:Error(?: \[[A-Z0-9_]+\])?: )?(.*)$/s.exec(details)?.[1] ?? details;
  return last
    .replace(/\.? Resolution note:.*$/s, '')
    .replace(/ \(\d{4}-\d\d-\d\dT[^)]*\)$/, '')
    .trim();
}

function isConnectionFailure(details: string): boolean {
  return /No connection established|Connection dropped|Name resolution failed|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|certificate|handshake|alert/i.test(details);
}

/** Why a connection failed, and what to do: for failures of the first call (the health check). */
export function describeConnectFailure(error: ClientError, connection: ResolvedConnection, timeoutMs: number): CliError {
  const where = `the daemon at ${connection.address}`;
  const from = connection.sources.address === 'default' ? 'the default address' : `the address from ${connection.sources.address}`;
  if (error.code === StatusCode.DEADLINE_EXCEEDED) {
    return new CliError(`no answer from ${where} within ${formatDuration(timeoutMs)}`, `check the address (${from}) and that job-worker runs there; --timeout waits longer`);
  }
  if (error.code === StatusCode.UNAVAILABLE && isConnectionFailure(error.details)) {
    const reason = connectionFailureReason(error.details);
    // OpenSSL's words for a peer that answered the TLS hello with something that is not TLS.
    if (/wrong version number|packet length too long|http request|unknown protocol|record layer failure/i.test(reason)) {
      return new CliError(
        `cannot connect to ${where}: the server there does not speak TLS (it answered with something else: a plain-HTTP server such as job-worker's metrics port, or another service)`,
        `check the port (${from}): job-worker serves its API over TLS on its --listen address (default 50051); its metrics port (default 9464) is plain HTTP`,
      );
    }
    let hint = `is job-worker running there? (${from}; \`npm start\` or \`job-worker --dev\` runs one on ${DEFAULT_ADDRESS})`;
    if (/Name resolution failed/i.test(reason)) {
      hint = `check the host name (${from})`;
    } else if (/altnames|does not match|Hostname\/IP/i.test(reason)) {
      hint = `the daemon's certificate does not name the host dialled; dial a name it lists, or reissue it with \`job-worker pki server --host … --ip …\``;
    } else if (/self[- ]signed certificate|unable to verify the first certificate|unable to get local issuer/i.test(reason)) {
      hint = `the daemon's certificate is not issued by the CA in ${connection.tls.caPath} (${connection.sources.ca === 'default' ? 'the default CA file' : `from ${connection.sources.ca}`}); use the CA that issued it`;
    } else if (/certificate|alert|handshake|ECONNRESET|Connection dropped/i.test(reason)) {
      hint = `the daemon may have refused this client certificate (${connection.tls.certificatePath}): is it issued by a CA the daemon trusts?`;
    }
    return new CliError(`cannot connect to ${where}: ${reason}`, hint);
  }
  return describeCallError(error, connection);
}

/** A failed call's status as a message, a hint and an exit code (2 for a request the daemon calls invalid). */
export function describeCallError(error: ClientError, connection: ResolvedConnection): CliError {
  switch (error.code) {
    case StatusCode.PERMISSION_DENIED: {
      const method = /may not call (\w+)/.exec(error.details)?.[1];
      const roles = method === undefined ? undefined : (ROLES_FOR[method] ?? 'reader, writer or admin');
      return new CliError(
        `permission denied: ${error.details}`,
        roles === undefined
          ? undefined
          : `${method} needs the ${roles} role; ask for a certificate with it (\`job-worker pki client --name … --role ${roles.split(' ')[0]}\`)`,
      );
    }
    case StatusCode.UNAUTHENTICATED:
      return new CliError(`not authenticated: ${error.details}`, `the daemon does not accept ${connection.tls.certificatePath}; is it issued by the CA the daemon trusts?`);
    case StatusCode.NOT_FOUND:
      return new CliError(error.details, '`job-cli list --all` lists the jobs you can see');
    case StatusCode.INVALID_ARGUMENT:
      return describeCommandError(error.details) ?? new CliError(withFlagNames(error.details), undefined, EXIT_USAGE);
    case StatusCode.DEADLINE_EXCEEDED:
      return new CliError(`the daemon at ${connection.address} did not answer in time`, '--timeout waits longer');
    case StatusCode.UNAVAILABLE:
      if (isConnectionFailure(error.details)) return new CliError(`lost the connection to the daemon at ${connection.address}: ${connectionFailureReason(error.details)}`);
      return new CliError(`the daemon at ${connection.address} is unavailable: ${error.details}`);
    default:
      return new CliError(withFlagNames(error.details) || error.codeName, undefined, EXIT_ERROR);
  }
}

/** A credentials file problem (the loader's message names the file and the fix), with where the path came from. */
export function describeTlsMaterialError(error: TlsMaterialError, connection: ResolvedConnection): CliError {
  const source = (Object.entries(connection.tls) as [keyof typeof connection.tls, string][]).find(([, file]) => file === error.file)?.[0];
  const sourceName = source === undefined ? undefined : connection.sources[source === 'caPath' ? 'ca' : source === 'certificatePath' ? 'cert' : 'key'];
  let hint: string | undefined;
  if (sourceName === 'default' && error.problem === 'missing') {
    hint = 'no credentials in the default place yet: start a dev daemon once (`npm start` or `job-worker --dev`), or give --ca/--cert/--key, JOBWORKER_CA/_CERT/_KEY or a context';
  } else if (sourceName !== undefined && sourceName !== 'default') {
    hint = `this path comes from ${sourceName}`;
  }
  return new CliError(error.message, hint);
}
