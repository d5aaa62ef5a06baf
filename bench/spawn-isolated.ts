// spawn+exit of /bin/true in its own namespaces (what a writer's job gets by default) against the
// same spawn without isolation and against child_process.spawn, interleaved in the same run; and
// the same with a network namespace of its own, which costs more than all the others together.
import { mkdir, mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';

import type { Isolation } from '../src/native';
import { compare, median, NS_PER_US, sampleInterleaved, SkipBenchmark, type Benchmark } from './harness';
import {
  addonContender,
  childProcessContender,
  LABEL_ADDON,
  LABEL_ADDON_ISOLATED,
  LABEL_ADDON_ISOLATED_NET,
  LABEL_CP_PIPE,
} from './spawn-contenders';

/** The user an unmapped writer's job would run as (a dynamic uid in the daemon; nobody here). */
const JOB_USER = { uid: 65534, gid: 65534 };

export const spawnIsolatedBenchmark: Benchmark = {
  name: 'spawn-isolated',
  description: 'spawn+exit of /bin/true with isolation (PID, mount, IPC, UTS, cgroup namespaces, private /tmp, 3 hidden directories): vs the addon without, vs child_process.spawn; and with network none',
  async run({ quick, dataDir, removeAtExit, progress }) {
    if (process.getuid?.() !== 0) throw new SkipBenchmark('needs root (namespaces, mounts)');
    const logs = await mkdtemp(path.join(dataDir, 'jobworker-bench-spawn-isolated-'));
    removeAtExit(logs);
    // What the daemon hides from every job: its state directory, configuration and PKI.
    const hidden = path.join(logs, 'hidden');
    const hide = ['state', 'config', 'pki'].map((name) => path.join(hidden, name));
    for (const dir of hide) await mkdir(dir, { recursive: true });
    const isolation: Isolation = { pid: true, mount: true, ipc: true, uts: true, cgroup: true, network: 'host', hostname: 'job', privateTmp: true, hide };
    const dirs = await Promise.all(['addon', 'isolated', 'net'].map((name) => mkdtemp(path.join(logs, `${name}-`))));
    const plan = quick ? { warmup: 10, rounds: 2, perRound: 10 } : { warmup: 100, rounds: 60, perRound: 20 };
    const samples = await sampleInterleaved(
      [
        addonContender(dirs[0]!),
        addonContender(dirs[1]!, undefined, { label: LABEL_ADDON_ISOLATED, isolation, ...JOB_USER }),
        addonContender(dirs[2]!, undefined, { label: LABEL_ADDON_ISOLATED_NET, isolation: { ...isolation, network: 'none' }, ...JOB_USER }),
        childProcessContender('pipe'),
      ],
      plan,
      progress,
    );
    const us = (label: string): number => median(samples.get(label)!) / NS_PER_US;
    const isolated = us(LABEL_ADDON_ISOLATED);
    const withNet = us(LABEL_ADDON_ISOLATED_NET);
    const note = `median of ${samples.get(LABEL_ADDON_ISOLATED)!.length} sequential spawn+exit per contender, ${plan.rounds} interleaved rounds; isolated jobs run as uid 65534`;
    return [
      compare({
        name: 'spawn-isolated.isolated-vs-child_process',
        unit: 'us/op',
        better: 'lower',
        value: isolated,
        baseline: LABEL_CP_PIPE,
        baselineValue: us(LABEL_CP_PIPE),
        target: { minRatio: 1, text: '>= 1x' },
        note,
      }),
      compare({
        name: 'spawn-isolated.isolated-vs-addon',
        unit: 'us/op',
        better: 'lower',
        value: isolated,
        baseline: LABEL_ADDON,
        baselineValue: us(LABEL_ADDON),
        note: 'what isolation costs a spawn+exit: namespaces made and torn down, mounts, init exec; no target',
      }),
      compare({
        name: 'spawn-isolated.network-none-vs-child_process',
        unit: 'us/op',
        better: 'lower',
        value: withNet,
        baseline: LABEL_CP_PIPE,
        baselineValue: us(LABEL_CP_PIPE),
        note: 'the same plus a network namespace with lo up: outside the target (docs/benchmarks.md); no target',
      }),
      compare({
        name: 'spawn-isolated.network-none-vs-isolated',
        unit: 'us/op',
        better: 'lower',
        value: withNet,
        baseline: LABEL_ADDON_ISOLATED,
        baselineValue: isolated,
        note: 'what a network namespace adds; no target',
      }),
    ];
  },
};
