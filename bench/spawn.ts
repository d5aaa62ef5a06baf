// spawn+exit of /bin/true, one after another: the addon against child_process.spawn and against the
// C posix_spawn floor, interleaved in the same run.
import { mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';

import { compileC } from './c-program';
import { compare, median, NS_PER_US, sampleInterleaved, type Benchmark, type Row } from './harness';
import {
  addonContender,
  childProcessContender,
  LABEL_ADDON,
  LABEL_CP_IGNORE,
  LABEL_CP_PIPE,
  LABEL_POSIX_SPAWN,
  LABEL_POSIX_SPAWN_LOG,
  posixSpawnContender,
} from './spawn-contenders';

export const spawnBenchmark: Benchmark = {
  name: 'spawn',
  description: 'spawn+exit of /bin/true: addon vs child_process.spawn vs a C posix_spawn loop',
  async run({ quick, scratchDir, dataDir, removeAtExit, progress }) {
    const floor = await compileC('posix-spawn-floor.c', scratchDir);
    // Log files live where --dir says (the daemon's log directory would be on such a disk), one
    // directory per contender that creates files; all removed only after the run.
    const addonLogs = await mkdtemp(path.join(dataDir, 'jobworker-bench-spawn-addon-'));
    removeAtExit(addonLogs);
    const floorLogs = await mkdtemp(path.join(dataDir, 'jobworker-bench-spawn-floor-'));
    removeAtExit(floorLogs);
    // Short rounds, many of them: the load from other work on the machine changes from second to
    // second, and every contender should see the same mix of it.
    const plan = quick ? { warmup: 10, rounds: 2, perRound: 20 } : { warmup: 200, rounds: 100, perRound: 30 };
    const samples = await sampleInterleaved(
      [
        addonContender(addonLogs),
        childProcessContender('pipe'),
        childProcessContender('ignore'),
        posixSpawnContender(floor),
        posixSpawnContender(floor, floorLogs),
      ],
      plan,
      progress,
    );
    const us = (label: string): number => median(samples.get(label)!) / NS_PER_US;
    const addon = us(LABEL_ADDON);
    const count = samples.get(LABEL_ADDON)!.length;
    const rows: Row[] = [
      compare({
        name: 'spawn.addon-vs-child_process',
        unit: 'us/op',
        better: 'lower',
        value: addon,
        baseline: LABEL_CP_PIPE,
        baselineValue: us(LABEL_CP_PIPE),
        target: { minRatio: 1.5, text: '>= 1.5x faster' },
        note: `median of ${count} sequential spawn+exit per contender, ${plan.rounds} interleaved rounds`,
      }),
      compare({
        name: 'spawn.addon-vs-child_process-ignore',
        unit: 'us/op',
        better: 'lower',
        value: addon,
        baseline: LABEL_CP_IGNORE,
        baselineValue: us(LABEL_CP_IGNORE),
        note: 'child_process without pipes: it captures nothing, so this is not like for like (no target)',
      }),
      compare({
        name: 'spawn.addon-vs-posix_spawn',
        unit: 'us/op',
        better: 'lower',
        value: addon,
        baseline: LABEL_POSIX_SPAWN,
        baselineValue: us(LABEL_POSIX_SPAWN),
        target: { minRatio: 1 / 1.5, text: 'within 1.5x of floor' },
      }),
      compare({
        name: 'spawn.addon-vs-posix_spawn+log',
        unit: 'us/op',
        better: 'lower',
        value: addon,
        baseline: LABEL_POSIX_SPAWN_LOG,
        baselineValue: us(LABEL_POSIX_SPAWN_LOG),
        note:
          `the floor plus a new log file per spawn in ${dataDir}, as the addon creates: what the addon ` +
          'adds besides the filesystem (creating a file costs 5-500 us on ext4, see docs); no target',
      }),
    ];
    // Most of each spawn+exit is /bin/true itself (exec, dynamic loading, exit), the same for everyone:
    // what each spawner adds above the floor says more about the spawner. A difference of two noisy
    // medians, so informational only (and left out if noise makes it meaningless).
    const floorUs = us(LABEL_POSIX_SPAWN);
    const addonOver = addon - floorUs;
    const cpOver = us(LABEL_CP_PIPE) - floorUs;
    if (addonOver > 0 && cpOver > 0) {
      rows.push(
        compare({
          name: 'spawn.overhead-addon-vs-child_process',
          unit: 'us/op',
          better: 'lower',
          value: addonOver,
          baseline: `${LABEL_CP_PIPE} overhead`,
          baselineValue: cpOver,
          note: 'time above the posix_spawn floor per spawn+exit (median minus floor median); no target',
        }),
      );
    }
    return rows;
  },
};
