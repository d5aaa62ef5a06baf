// Short programs the daemon runs for itself (getent for the user database, rm as a job's user for
// its scratch directory), spawned by the addon rather than by child_process.
//
// Why: Node's child_process forks, and a fork copies the daemon's page tables while its event loop
// waits: 7.6 ms at 54 MB of RSS, 35-43 ms at 2 GB here (docs/benchmarks.md, issue 17's eighth
// stop), paid by every call and stream the daemon serves at that moment. The addon's spawn shares
// the daemon's memory until the exec (CLONE_VM | CLONE_VFORK), on a threadpool thread: nothing is
// copied, and the event loop goes on. The program's stdout goes to a log file of the usual format
// in a private directory of its own (0700, under $TMPDIR), read back once the program has exited
// and its output is on disk; then both go (per run: a process killed by a signal leaves nothing
// behind but the run it was in, and the first run of a later daemon removes that: see
// sweepStaleOutputDirectories). Where no such directory can be made (a read-only /tmp: a unit
// without PrivateTmp=), helpers are forked by child_process as before.
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { openLog, readRecords } from '../logs/reader';
import { spawnProcessAsync } from '../native';

export interface HelperRun {
  command: string;
  args: readonly string[];
  /** The program's whole environment. */
  env: Readonly<Record<string, string>>;
  /** Run as this user and group, with no supplementary groups (default: the daemon's). */
  runAs?: { uid: number; gid: number };
  /** Killed (SIGKILL) after this long. */
  timeoutMs: number;
  /** stdout kept at most; more is dropped and `outputTruncated` set. */
  maxOutputBytes: number;
}

export interface HelperResult {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Everything the program wrote to stdout, up to maxOutputBytes (stderr is dropped). */
  stdout: string;
  outputTruncated: boolean;
  timedOut: boolean;
}

/** The soft RLIMIT_NOFILE a helper gets (Node raises its own to the hard limit). */
const HELPER_NOFILE = 1024;

let lastOutputDir: string | null = null;

/** The output directory of the latest run through the addon (removed when the run ended), for tests. */
export function helperOutputDirectory(): string | null {
  return lastOutputDir;
}

/**
 * Output directories are named jobworker-helper-<boot>-<pid namespace>-<pid>-XXXXXX: whose they
 * are, so that a later process can tell one left by a process that died mid-run (SIGKILL) from one
 * in use. <boot> (the kernel's boot id, first 8 hex digits) keeps hosts that share a $TMPDIR apart;
 * the pid namespace's inode, containers on one host.
 */
const OUTPUT_DIR_PREFIX = 'jobworker-helper-';
const OUTPUT_DIR_NAME = /^jobworker-helper-([0-9a-f]{8}-\d+)-(\d+)-[A-Za-z0-9]{6}$/;

/** "<boot>-<pid namespace>", or null where either cannot be read (then nothing is swept). */
function processScope(): string | null {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').replace(/-/g, '').slice(0, 8);
    const namespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
    return /^[0-9a-f]{8}$/.test(boot) && namespace !== undefined ? `${boot}-${namespace}` : null;
  } catch {
    return null;
  }
}
const OWN_SCOPE = processScope();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'; // EPERM: alive, someone else's
  }
}

/**
 * Removes the output directories under `parent` that processes of this boot and pid namespace left
 * when they died mid-run: a real directory (not a link), owned by this user, named for a pid that no
 * longer exists. Another host's, namespace's or user's, or a live process's, are left alone; where
 * this process cannot tell its own scope, nothing is. Returns the names removed; never throws.
 */
export async function sweepStaleOutputDirectories(parent: string): Promise<string[]> {
  const removed: string[] = [];
  if (OWN_SCOPE === null) return removed;
  const uid = process.geteuid?.() ?? -1;
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const match = OUTPUT_DIR_NAME.exec(name);
    if (!match || match[1] !== OWN_SCOPE) continue;
    const pid = Number(match[2]);
    if (alive(pid)) continue; // (this process's own among them)
    const where = path.join(parent, name);
    const stat = await lstat(where).catch(() => null);
    if (!stat?.isDirectory() || stat.uid !== uid) continue;
    await rm(where, { recursive: true, force: true }).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}

/** Per $TMPDIR seen, the sweep of what dead processes left there: once, before the first run. */
const swept = new Map<string, Promise<string[]>>();

/** Runs the program to its end; rejects only if it could not be started (SpawnError). */
export async function runHelper(run: HelperRun): Promise<HelperResult> {
  const parent = tmpdir();
  let sweep = swept.get(parent);
  if (sweep === undefined) swept.set(parent, (sweep = sweepStaleOutputDirectories(parent).catch(() => [])));
  await sweep; // one readdir, once: cheap, and a run returns only after the dead's directories went
  let dir: string;
  try {
    dir = await mkdtemp(path.join(parent, `${OUTPUT_DIR_PREFIX}${OWN_SCOPE ?? 'unknown'}-${process.pid}-`)); // 0700
  } catch {
    return runForked(run);
  }
  lastOutputDir = dir;
  const logPath = path.join(dir, 'output.log');
  try {
    const child = await spawnProcessAsync({
      command: run.command,
      args: run.args,
      env: run.env,
      cwd: '/',
      logPath,
      logMaxBytes: run.maxOutputBytes,
      nofileSoft: HELPER_NOFILE,
      ...(run.runAs === undefined ? {} : { uid: run.runAs.uid, gid: run.runAs.gid, groups: [] }),
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, run.timeoutMs);
    let exit: Awaited<typeof child.exited>;
    try {
      exit = await child.exited;
    } finally {
      clearTimeout(timer);
    }
    // What it wrote is in the pipes: read dry now, not held open by anything it left running.
    child.closeCapture();
    const closed = await child.closed;
    const file = await openLog(logPath);
    const pieces: Buffer[] = [];
    try {
      for await (const record of readRecords(file)) if (record.stream === 'stdout') pieces.push(record.data);
    } finally {
      await file.close();
    }
    return { code: exit.code, signal: exit.signal, stdout: Buffer.concat(pieces).toString('utf8'), outputTruncated: closed.truncated, timedOut };
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined); // also after a failed spawn, which may have made the log
  }
}

/** The same through child_process (a fork of the daemon): only where no output directory can be made. */
function runForked(run: HelperRun): Promise<HelperResult> {
  return new Promise((resolve, reject) => {
    execFile(
      run.command,
      run.args,
      {
        env: run.env,
        cwd: '/',
        encoding: 'utf8',
        timeout: run.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: run.maxOutputBytes,
        ...(run.runAs === undefined ? {} : { uid: run.runAs.uid, gid: run.runAs.gid }), // libuv drops supplementary groups
      },
      (error, stdout) => {
        if (error === null) return resolve({ code: 0, signal: null, stdout, outputTruncated: false, timedOut: false });
        if (typeof error.code === 'string' && error.code !== 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') return reject(error); // not started
        const outputTruncated = error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER';
        resolve({
          code: typeof error.code === 'number' ? error.code : null,
          signal: (error.signal as NodeJS.Signals | undefined) ?? null,
          stdout,
          outputTruncated,
          timedOut: error.killed === true && !outputTruncated,
        });
      },
    );
  });
}
