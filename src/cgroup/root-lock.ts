// One owner per cgroup root. Two jobworkers on the same root would each take the other's running jobs
// for orphans at start-up and kill them, and the first to shut down would remove the root from under
// the other. So an instance holds an exclusive flock(2) on its root's base directory, in every
// hierarchy, for as long as it runs: the lock lives with the cgroup itself (cgroupfs directories take
// flock like any file), not with a state directory, and the kernel drops it when the process dies,
// so it is never stale. A second instance is refused, told which process holds it.
import { readFileSync, statSync } from 'node:fs';

import { JobworkerError } from '../errors';
import type { CgroupFs, RootLock } from './cgroup-fs';
import { splitDev } from './devices';

/** Locks `baseDir` for this instance, or throws naming the process that holds it. */
export function lockRoot(fs: CgroupFs, baseDir: string): RootLock {
  if (fs.lock === undefined) return { release: () => undefined }; // a cgroupfs without locks (unit tests of the layer alone)
  const lock = fs.lock(baseDir);
  if (lock !== undefined) return lock;
  const holders = lockHolders(baseDir);
  const who = holders.length === 0 ? 'another process' : holders.map(describeProcess).join(', ');
  throw new JobworkerError(
    'failed-precondition',
    `cgroup root ${baseDir} is in use by ${who}, another jobworker: two instances on one root would kill each other's jobs. ` +
      'Give this one a root of its own (config cgroupRoot or cgroupRootName; by default the root name comes from the state directory, so a state directory of its own does it)',
  );
}

/** Pids holding a lock on `file`, from /proc/locks ("1: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF"). */
export function lockHolders(file: string, procLocks = '/proc/locks'): number[] {
  let dev: { major: number; minor: number };
  let inode: bigint;
  let text: string;
  try {
    const stat = statSync(file, { bigint: true });
    dev = splitDev(stat.dev);
    inode = stat.ino;
    text = readFileSync(procLocks, 'utf8');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    // A blocked waiter's line starts with "->": only holders count.
    if (fields[1] === '->' || fields.length < 6) continue;
    const [major, minor, ino] = (fields[5] ?? '').split(':');
    if (major === undefined || minor === undefined || ino === undefined) continue;
    if (Number.parseInt(major, 16) === dev.major && Number.parseInt(minor, 16) === dev.minor && BigInt(ino) === inode) {
      const pid = Number(fields[4]);
      if (Number.isInteger(pid) && pid > 0 && !pids.includes(pid)) pids.push(pid);
    }
  }
  return pids;
}

function describeProcess(pid: number): string {
  try {
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(0, 3).join(' ');
    return command === '' ? `process ${pid}` : `process ${pid} (${command.slice(0, 120)})`;
  } catch {
    return `process ${pid}`;
  }
}
