// A damaged journal is reported, never amplified. Journal bytes flipped at random (seeded), the
// journal cut short, emptied, and damaged after a SIGKILL with jobs running: at each restart the
// daemon serves, every job whose log holds output is still there with that output, a job whose
// intact record says it finished stays as it was, the others are lost with a reason that says what
// is not known (never "killed" unless they were), the damaged lines are copied aside, and exactly one
// warning names every job that changed.
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import * as path from 'node:path';

import type { JobView, JobworkerClient } from '../../src/client';
import { damageJournalLinesOf, flipJournalBytes, journalLinesOf } from '../helpers/journal';
import { eventually, pool, prng, ReliabilityDaemon, sumMetric } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

const DAMAGE_WARNING = 'state directory damaged; everything intact was kept';

interface Expected {
  output: string;
  /** As last seen before the damage. */
  view: JobView;
}

async function stdoutOf(client: JobworkerClient, jobId: string): Promise<string> {
  return (await jobOutput(client, { jobId })).stdout.toString();
}

/**
 * Restarts after damage and checks every known job: present, its output whole, its state kept
 * unless it was named in the one warning. Returns how many changed and how many were rebuilt.
 */
async function restartAndCheck(daemon: ReliabilityDaemon, expected: Map<string, Expected>, round: string, log: (message: string) => void): Promise<{ damagedLines: number; changed: number; rebuilt: number }> {
  await daemon.restart();
  const admin = await daemon.client('admin', ['admin']);
  const warnings = daemon.process.lines.filter((line) => line.msg.startsWith(DAMAGE_WARNING));
  assert.ok(warnings.length <= 1, `${round}: ${warnings.length} damage warnings`);
  const warning = warnings[0]?.msg ?? '';
  let changed = 0;
  for (const [id, { output, view }] of expected) {
    const now = await admin.getJob(id).catch((error: unknown) => assert.fail(`${round}: job ${id} (${output.trim()}) is gone: ${String(error)}`));
    assert.equal(await stdoutOf(admin, id), output, `${round}: the output of ${id}`);
    if (now.state === view.state && now.outcome.reason === view.outcome.reason) continue;
    changed++;
    assert.equal(now.state, 'lost', `${round}: ${id} was ${view.state}, now ${now.state}`);
    const reason = now.outcome.reason ?? '';
    // A job that was running when the daemon died is lost by crash recovery, not by damage.
    if (!reason.startsWith('lost: the daemon stopped while the job was running')) {
      assert.ok(warning.includes(id), `${round}: the warning does not name ${id}, which changed: ${warning}`);
      assert.match(reason, /rebuilt from its log|how it ended is unknown/, `${round}: ${id}`);
    }
    log(`${round}: ${id} ${view.state} → ${reason}`);
    expected.set(id, { output, view: now });
  }
  const metrics = await daemon.metrics();
  const damagedLines = sumMetric(metrics, 'jobworker_state_damage{what="journal_lines"}');
  const rebuilt = sumMetric(metrics, 'jobworker_state_damage{what="rebuilt_from_logs"}');
  if (damagedLines + rebuilt > 0) assert.equal(warnings.length, 1, `${round}: damage but no warning`);
  const copied = /were copied to ([^;\s]+)/.exec(warning)?.[1];
  if (damagedLines > 0) assert.equal((readFileSync(copied!, 'latin1').match(/^offset=\d+ length=\d+/gm) ?? []).length, damagedLines, `${round}: the copy aside`);
  assert.equal(daemon.alive, true);
  return { damagedLines, changed, rebuilt };
}

export const stateDamage: Scenario = {
  name: 'state-damage',
  group: 'faults',
  title: 'flipped, truncated and emptied journal bytes: nothing intact lost, one warning names what was',
  timeoutMs: () => 6 * 60_000,
  async run(ctx: ScenarioContext) {
    const random = prng(ctx.seed);
    const count = ctx.soak ? 200 : 40;
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'damage' });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const client = await daemon.client('alice', ['writer']);
    const expected = new Map<string, Expected>();
    await pool(count, 4, async (i) => {
      const output = `job ${i} output\n`;
      const job = await client.startJob({ command: 'sh', args: ['-c', `printf 'job ${i} output\\n'; exit ${i % 3}`] });
      assert.ok(await eventually(async () => !['starting', 'running'].includes((await client.getJob(job.id)).state), 30_000));
      expected.set(job.id, { output, view: await client.getJob(job.id) });
    });
    await daemon.stop();

    // 1. Bits flipped at random in the journal.
    const journal = path.join(daemon.stateDir, 'journal');
    const size = statSync(journal).size;
    flipJournalBytes(daemon.stateDir, Array.from({ length: 6 }, () => Math.floor(random() * size)));
    const flipped = await restartAndCheck(daemon, expected, 'flipped bits', ctx.log);
    assert.ok(flipped.damagedLines > 0);
    ctx.figure('flipped bits: lines damaged / jobs changed (rebuilt)', `${flipped.damagedLines} / ${flipped.changed} (${flipped.rebuilt})`);

    // 2. Cut short (a torn last line) somewhere in its second half.
    await daemon.stop();
    const lines = journalLinesOf(daemon.stateDir);
    const cutLine = lines[Math.floor(lines.length / 2 + random() * (lines.length / 2 - 1))]!;
    truncateSync(journal, cutLine.offset + Math.floor(cutLine.length / 3));
    const cut = await restartAndCheck(daemon, expected, 'truncated', ctx.log);
    assert.ok(cut.rebuilt > 0, 'the jobs past the cut are rebuilt from their logs');
    ctx.figure('truncated: jobs rebuilt from logs', cut.rebuilt);

    // 3. Emptied.
    await daemon.stop();
    truncateSync(journal, 0);
    const emptied = await restartAndCheck(daemon, expected, 'emptied', ctx.log);
    ctx.figure('emptied: jobs rebuilt from logs (none lost)', `${emptied.rebuilt} (0 of ${count})`);

    // 4. SIGKILL with jobs running, their records damaged: still killed, lost, output kept.
    const running: string[] = [];
    const writer = await daemon.client('alice', ['writer']);
    for (let i = 0; i < 4; i++) {
      const job = await writer.startJob({ command: 'sh', args: ['-c', `echo running ${i}; exec sleep 1000`] });
      assert.ok(await eventually(async () => (await stdoutOf(writer, job.id)) === `running ${i}\n`, 10_000));
      running.push(job.id);
      expected.set(job.id, { output: `running ${i}\n`, view: await writer.getJob(job.id) });
    }
    await daemon.stop('SIGKILL');
    for (const id of running.slice(0, 2)) damageJournalLinesOf(daemon.stateDir, id);
    const killed = await restartAndCheck(daemon, expected, 'killed with jobs running', ctx.log);
    assert.equal(killed.changed, running.length);
    const admin = await daemon.client('admin', ['admin']);
    for (const id of running) assert.match((await admin.getJob(id)).outcome.reason ?? '', /killed/);
    assert.deepEqual(daemon.jobCgroups(), [], 'their processes are gone with their cgroups');
    ctx.figure('SIGKILL, 2 of 4 running jobs\' records damaged', `${killed.rebuilt} rebuilt, all ${running.length} lost with their output`);
    ctx.figure('jobs with output lost', 0);
  },
};
