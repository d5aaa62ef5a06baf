import { readdirSync, readFileSync } from 'node:fs';

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** The children of `pid` (of every one of its threads), from /proc. */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      children.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
    } catch {
      // the thread is gone meanwhile
    }
  }
  return children;
}

/** Children of this process that are zombies (exited, not reaped). */
export function zombieChildren(): number[] {
  return zombiesOf(process.pid);
}

/** Children of `pid` that are zombies (exited, not reaped). */
export function zombiesOf(pid: number): number[] {
  const zombies: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && Number(fields[1]) === pid) zombies.push(Number(entry));
  }
  return zombies;
}

/** True if the process exists and is not a zombie (a killed orphan may wait a moment for init). */
export function isRunning(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}
