// A temporary directory that jobs of an isolated daemon can see. Each isolated job has a private
// /tmp, /var/tmp and /dev/shm, so a file the test makes under os.tmpdir() never appears to a job;
// /var/lib is shared (read-only) with jobs, so a directory made there is visible to them.

import { chmodSync, mkdtempSync } from 'node:fs';
import * as path from 'node:path';

/** mkdtemp under /var/lib, mode 0755 (jobs may run as another user); the caller removes it. */
export function mkdtempVisibleToJobs(prefix: string): string {
  const dir = mkdtempSync(path.join('/var/lib', `jobworker-${prefix}-`));
  chmodSync(dir, 0o755);
  return dir;
}
