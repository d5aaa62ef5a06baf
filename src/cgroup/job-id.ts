// Job ids become directory names in every hierarchy: keep them to characters that cannot escape the
// jobs directory or collide with a cgroup control file (those all contain a ".").
import { ValidationError } from '../errors';

const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function isJobId(name: string): boolean {
  return JOB_ID.test(name);
}

export function checkJobId(id: string): void {
  if (!isJobId(id)) {
    throw new ValidationError('id', `must be 1-128 letters, digits, "-" or "_" (starting with a letter or digit), got ${JSON.stringify(id)}`);
  }
}
