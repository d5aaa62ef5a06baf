// Short programs the daemon runs for itself (getent for the user database, rm as a job's user for
// its scratch directory), spawned by the addon rather than by child_process.
//
// Why: Node's child_process forks, and a fork copies the daemon's page tables while its event loop
// waits: 4.8 ms at 46 MB of RSS, 15 ms at 361 MB here (docs/benchmarks.md, issue 17's eighth stop),
// paid by every call and stream the daemon serves at that moment. The addon's spawn shares the
// daemon's memory until the exec (CLONE_VM | CLONE_VFORK), on a threadpool thread: nothing is
// copied, and the event loop goes on. The program's stdout goes to a log file of the usual format in
// a private directory (0700, made once per process), read back once the program has exited and
// its output is on disk, then removed.
import { mkdtempSync, rmSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { openLog, readRecords } from '../logs/reader';
import { spawnProcessAsync, type ExitInfo } from '../native';

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
  exit: ExitInfo;
  /** Everything the program wrote to stdout, up to maxOutputBytes (stderr is dropped). */
  stdout: string;
  outputTruncated: boolean;
  timedOut: boolean;
}

/** The soft RLIMIT_NOFILE a helper gets (Node raises its own to the hard limit). */
const HELPER_NOFILE = 1024;

let outputDir: string | null = null;
let runs = 0;

/** The directory helpers' output goes to (null until the first run), for tests. */
export function helperOutputDirectory(): string | null {
  return outputDir;
}

function helperOutputDir(): string {
  if (outputDir === null) {
    const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-helpers-')); // 0700
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    outputDir = dir;
  }
  return outputDir;
}

/** Runs the program to its end; rejects only if it could not be started (SpawnError). */
export async function runHelper(run: HelperRun): Promise<HelperResult> {
  const logPath = path.join(helperOutputDir(), `${process.pid}-${++runs}.log`);
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
    let exit: ExitInfo;
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
    return { exit, stdout: Buffer.concat(pieces).toString('utf8'), outputTruncated: closed.truncated, timedOut };
  } finally {
    await unlink(logPath).catch(() => undefined); // also after a failed spawn, which may have made it
  }
}
