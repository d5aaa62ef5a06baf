// The ways to spawn /bin/true and wait for its exit that the spawn benchmarks compare. Shared by the
// benchmarking process and the big-heap child (spawn-heap-child.ts).
import { spawn as spawnChild, execFile } from 'node:child_process';
import * as path from 'node:path';

import { spawnProcess, type Isolation } from '../src/native';
import { timeEach, type Contender } from './harness';

export const TRUE_PATH = '/bin/true';
/** The job's whole environment, the same for every contender. */
export const JOB_ENV: Readonly<Record<string, string>> = { PATH: '/usr/local/bin:/usr/bin:/bin' };

export const LABEL_ADDON = 'addon';
export const LABEL_ADDON_ISOLATED = 'addon, isolated';
export const LABEL_ADDON_ISOLATED_NET = 'addon, isolated + network none';
export const LABEL_CP_PIPE = 'child_process.spawn(stdio:pipe)';
export const LABEL_CP_IGNORE = 'child_process.spawn(stdio:ignore)';
export const LABEL_POSIX_SPAWN = 'posix_spawn (C loop, floor)';
export const LABEL_POSIX_SPAWN_LOG = 'posix_spawn + log file (C loop)';

/**
 * Where a contender also records how long the spawn call itself took (ns): both return once the
 * child has exec'd (vfork semantics for the addon, libuv's exec-status pipe for child_process).
 */
export type SpawnCallTimes = number[];

/** An isolated job as the addon spawns it: its namespaces and mounts, and the user it runs as. */
export interface IsolatedJob {
  label: string;
  isolation: Isolation;
  uid: number;
  gid: number;
}

/**
 * spawnProcess() then `await exited` (the process is reaped and its pipes read dry). Each spawn gets
 * a new log file in `logDir`, as a job does. The files are not removed here: on ext4, deleting
 * files makes creating the next ones slower for minutes (recently deleted inodes are skipped, one
 * by one), so the caller removes the whole directory once measuring is over. With `isolated`, each
 * job runs in its namespaces as that user.
 */
/** Log names for every addon contender of the process: logs are created O_EXCL, and several contenders may share a directory. */
let logSeq = 0;

export function addonContender(logDir: string, spawnCall?: SpawnCallTimes, isolated?: IsolatedJob): Contender {
  const job = isolated === undefined ? {} : { isolation: isolated.isolation, uid: isolated.uid, gid: isolated.gid, groups: [] };
  return {
    label: isolated?.label ?? LABEL_ADDON,
    async run(iterations) {
      const closes: Promise<unknown>[] = [];
      const samples = await timeEach(iterations, async () => {
        const logPath = path.join(logDir, `spawn-${logSeq++}.log`);
        const start = process.hrtime.bigint();
        const proc = spawnProcess({ command: TRUE_PATH, env: JOB_ENV, logPath, ...job });
        spawnCall?.push(Number(process.hrtime.bigint() - start));
        const exit = await proc.exited;
        closes.push(proc.closed);
        if (exit.code !== 0) throw new Error(`${TRUE_PATH} exited with ${exit.code ?? exit.signal}`);
      });
      await Promise.all(closes);
      return samples;
    },
  };
}

/**
 * child_process.spawn() then its 'close' event (exited and stdio closed). With 'pipe', stdout and
 * stderr are read (and discarded), as a capturing caller would; 'ignore' is the cheapest it gets.
 */
export function childProcessContender(stdio: 'pipe' | 'ignore', spawnCall?: SpawnCallTimes): Contender {
  const discard = (): void => {};
  return {
    label: stdio === 'pipe' ? LABEL_CP_PIPE : LABEL_CP_IGNORE,
    run(iterations) {
      return timeEach(
        iterations,
        () =>
          new Promise<void>((resolve, reject) => {
            const start = process.hrtime.bigint();
            const child = spawnChild(TRUE_PATH, [], { stdio: ['ignore', stdio, stdio], env: JOB_ENV });
            spawnCall?.push(Number(process.hrtime.bigint() - start));
            child.stdout?.on('data', discard);
            child.stderr?.on('data', discard);
            child.once('error', reject);
            child.once('close', (code, signal) => {
              if (code === 0) resolve();
              else reject(new Error(`${TRUE_PATH} exited with ${code ?? signal}`));
            });
          }),
      );
    },
  };
}

/**
 * The compiled C loop (posix-spawn-floor.c): it times each of its own spawns. With `logDir`, each
 * spawn also creates, writes and closes a new log file there, as the addon does.
 */
export function posixSpawnContender(binary: string, logDir?: string): Contender {
  const logArgs = logDir === undefined ? [] : ['-l', logDir];
  return {
    label: logDir === undefined ? LABEL_POSIX_SPAWN : LABEL_POSIX_SPAWN_LOG,
    run(iterations) {
      return new Promise((resolve, reject) => {
        execFile(binary, [...logArgs, String(iterations), TRUE_PATH], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
          if (error) {
            reject(error);
            return;
          }
          const samples = stdout
            .split('\n')
            .filter((line) => line.length > 0)
            .map(Number);
          if (samples.length !== iterations || samples.some((n) => !Number.isFinite(n))) {
            reject(new Error(`posix-spawn-floor printed ${samples.length} samples, expected ${iterations}`));
            return;
          }
          resolve(samples);
        });
      });
    },
  };
}
