// From "who should this job run as" to numbers: names looked up in the user database when the job
// starts, defaults filled in the way login(1) and systemd's User= would.
import { JobworkerError, ValidationError } from '../errors';
import type { JobRunAs, JobUserSpec } from './job-spec';
import type { UserDatabase } from './user-database';

async function groupId(db: UserDatabase, field: string, group: number | string): Promise<number> {
  if (typeof group === 'number') return group;
  const entry = await db.group(group);
  if (entry === null) throw new ValidationError(field, `no group named ${JSON.stringify(group)} in the daemon's user database`);
  return entry.gid;
}

/**
 * Resolves a (checked) user spec. By name: the user must exist. By number: it may not (as with
 * `setpriv --reuid`); then the primary group defaults to the same number and there are no
 * supplementary groups. Supplementary groups default to the user's own (initgroups(3)).
 */
export async function resolveRunAs(db: UserDatabase, field: string, spec: JobUserSpec): Promise<JobRunAs> {
  if (spec.uid !== undefined && spec.name !== undefined && spec.gid !== undefined && spec.groups?.every((g) => typeof g === 'number')) {
    return { uid: spec.uid, gid: spec.gid, groups: spec.groups as number[], name: spec.name, kind: spec.kind ?? 'requested' };
  }
  const key = spec.name ?? String(spec.uid);
  const entry = await db.user(key);
  if (entry === null && spec.name !== undefined) {
    throw new ValidationError(`${field}.name`, `no user named ${JSON.stringify(spec.name)} in the daemon's user database`);
  }
  const uid = entry?.uid ?? spec.uid!;
  let gid: number;
  if (spec.gid !== undefined) gid = spec.gid;
  else if (spec.group !== undefined) gid = await groupId(db, `${field}.group`, spec.group);
  else gid = entry?.gid ?? uid;
  let groups: number[];
  if (spec.groups !== undefined) {
    groups = [];
    for (const [i, group] of spec.groups.entries()) groups.push(await groupId(db, `${field}.groups[${i}]`, group));
  } else {
    groups = entry === null ? [] : await db.groupsOf(entry.name, gid);
  }
  if (groups.length > 64) throw new JobworkerError('invalid-argument', `${field}: ${entry?.name ?? uid} is in ${groups.length} groups; at most 64 are passed to a job (give groups explicitly)`);
  return { uid, gid, groups: [...new Set(groups)], name: entry?.name ?? null, kind: spec.kind ?? 'requested' };
}
