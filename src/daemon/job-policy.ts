// From the config to what the server enforces and the Worker applies: identities mapped to host
// users (names looked up now, through NSS, so a typo stops the daemon at start), the isolation
// defaults and who may opt out, the directories hidden from every job, and a dynamic uid range
// checked against the subordinate id ranges of user namespaces.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { JobworkerError } from '../errors';
import type { JobPolicy } from '../server';
import { checkDynamicUidRange, NAMESPACE_NAMES, resolveRunAs, type JobUserSpec, type NamespaceName, type UserDatabase } from '../worker';
import type { DaemonConfig, IdentityUser } from './config';

function userSpecOf(entry: IdentityUser): JobUserSpec {
  const spec: JobUserSpec = { kind: 'mapped' };
  if (typeof entry.user === 'number') spec.uid = entry.user;
  else if (/^\d+$/.test(entry.user)) spec.uid = Number(entry.user);
  else spec.name = entry.user;
  if (typeof entry.group === 'number') spec.gid = entry.group;
  else if (entry.group !== undefined) spec.group = entry.group;
  if (entry.groups !== undefined) spec.groups = entry.groups;
  return spec;
}

/** The policy of the config, every mapped user resolved to numbers (and its name). */
export async function jobPolicyOf(config: DaemonConfig, db: UserDatabase): Promise<JobPolicy> {
  const identityUsers = new Map<string, JobUserSpec>();
  for (const [identity, entry] of Object.entries(config.identities)) {
    const field = `identities.${identity}`;
    const runAs = await resolveRunAs(db, field, userSpecOf(entry)).catch((error: unknown) => {
      // The spec's "name" is the config's "user".
      const message = error instanceof Error ? error.message.replace(`${field}.name:`, `${field}.user:`) : String(error);
      throw new JobworkerError('invalid-argument', `config: ${message}`);
    });
    const resolved: JobUserSpec = { uid: runAs.uid, gid: runAs.gid, groups: runAs.groups, kind: 'mapped' };
    if (runAs.name !== null) resolved.name = runAs.name;
    identityUsers.set(identity, resolved);
  }
  const namespaces = Object.fromEntries(NAMESPACE_NAMES.map((name) => [name, config.isolation.namespaces[name] ?? true])) as Record<NamespaceName, boolean>;
  return {
    defaults: { namespaces, network: config.isolation.network, readOnlyRoot: config.isolation.readOnlyRoot },
    optOuts: config.isolation.optOuts,
    mounts: config.isolation.mounts,
    identityUsers,
  };
}

/** Directories that hold far more than the daemon's files: hiding one would break every job. */
const SHARED_DIRECTORIES = new Set(['/', '/etc', '/usr', '/var', '/var/lib', '/opt', '/srv', '/home', '/root', '/run', '/tmp', '/var/tmp', '/mnt', '/media']);

export interface HiddenPaths {
  hide: string[];
  /** Directories of the daemon's files that cannot be hidden, with the reason (for a warning). */
  notHidden: { path: string; reason: string }[];
}

/** The config's directory, the TLS files' directories and `isolation.hide`: hidden from every job. */
export function hiddenPathsOf(config: DaemonConfig, configFile: string | null): HiddenPaths {
  const nats = config.fleet?.nats.tls;
  const own = [configFile, config.tls?.caPath, config.tls?.certificatePath, config.tls?.privateKeyPath, nats?.caPath, nats?.certificatePath, nats?.privateKeyPath]
    .filter((file): file is string => typeof file === 'string')
    .map((file) => path.dirname(path.resolve(file)));
  const hide = new Set<string>();
  const notHidden: HiddenPaths['notHidden'] = [];
  for (const dir of own) {
    if (SHARED_DIRECTORIES.has(dir)) notHidden.push({ path: dir, reason: 'the daemon\'s config or TLS files are in a directory shared with the system; move them into one of their own (e.g. /etc/jobworker) so that jobs cannot see them' });
    else hide.add(dir);
  }
  for (const dir of config.isolation.hide) hide.add(path.resolve(dir));
  return { hide: [...hide], notHidden };
}

/** "name:first:count" lines of /etc/subuid or /etc/subgid. */
function subordinateRanges(file: string): { owner: string; first: number; count: number }[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.trim().split(':'))
    .filter((fields) => fields.length === 3 && /^\d+$/.test(fields[1]!) && /^\d+$/.test(fields[2]!))
    .map(([owner, first, count]) => ({ owner: owner!, first: Number(first), count: Number(count) }));
}

/**
 * The dynamic uid range, refused if it overlaps a subordinate range of /etc/subuid or /etc/subgid:
 * a rootless container of that user maps those ids, and could own (and reach) a job's files.
 */
export function checkDynamicUids(config: DaemonConfig, files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): void {
  const { first, count } = checkDynamicUidRange('dynamicUids', config.dynamicUids);
  for (const file of [files.subuid, files.subgid]) {
    for (const range of subordinateRanges(file)) {
      if (range.first < first + count && first < range.first + range.count) {
        throw new JobworkerError(
          'invalid-argument',
          `config: dynamicUids ${first}..${first + count - 1} overlaps ${file}'s range of ${range.owner} (${range.first}..${range.first + range.count - 1}); choose another range`,
        );
      }
    }
  }
}
