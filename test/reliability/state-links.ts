// The state directory cannot be turned against the daemon (root): a state directory another user
// owns, or others may write, or below a directory others may write, is refused at start with the
// path, what was found and the fix, and nothing is created in it; links planted in it (the journal,
// its temp file, spares, a job's log, also spares replaced while the daemon runs) are never written,
// truncated or read through: the files they point to keep every byte.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import type { JobworkerClient } from '../../src/client';
import { createTestPki } from '../helpers/pki';
import { eventually, pool, ReliabilityDaemon, sumMetric } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { jobOutput } from './streams';

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Files outside the state directory that links will point to; checked byte for byte at the end. */
class PreciousFiles {
  #files = new Map<string, string>();
  constructor(private readonly dir: string) {
    mkdirSync(dir, { mode: 0o700 });
  }
  make(name: string, content: string | Buffer = `precious ${name}: not the daemon's to touch\n`): string {
    const file = path.join(this.dir, name);
    writeFileSync(file, content);
    this.#files.set(file, sha(file));
    return file;
  }
  /** Files whose bytes changed. */
  changed(): string[] {
    return [...this.#files].filter(([file, digest]) => sha(file) !== digest).map(([file]) => file);
  }
  get count(): number {
    return this.#files.size;
  }
}

async function runJobs(client: JobworkerClient, count: number): Promise<void> {
  await pool(count, 4, async (i) => {
    const job = await client.startJob({ command: 'sh', args: ['-c', `echo link-check ${i}`] });
    assert.ok(await eventually(async () => (await client.getJob(job.id)).state === 'exited', 30_000));
    assert.equal((await jobOutput(client, { jobId: job.id })).stdout.toString(), `link-check ${i}\n`);
  });
}

export const stateLinks: Scenario = {
  name: 'state-links',
  group: 'security',
  title: 'an untrusted state directory is refused; links planted in it are never followed',
  timeoutMs: () => 5 * 60_000,
  async run(ctx: ScenarioContext) {
    const pki = await createTestPki();
    ctx.defer(() => pki.remove());
    const precious = new PreciousFiles(path.join(ctx.workDir, 'precious'));

    // 1. Untrusted state directories: refused, naming the path, the owner and mode, and the fix.
    const refusals: string[] = [];
    const refused = async (label: string, stateDir: string, expected: RegExp) => {
      const before = readdirSync(stateDir);
      const error = await ReliabilityDaemon.start(ctx.workDir, { label, stateDir, pki }).then(
        async (daemon) => {
          await daemon.close();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      assert.ok(error !== undefined, `${label}: the daemon started`);
      assert.match(error.message, expected, label);
      assert.deepEqual(readdirSync(stateDir), before, `${label}: nothing was created in it`);
      refusals.push(label);
    };
    const foreign = path.join(ctx.workDir, 'foreign');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 65534, 65534);
    await refused('foreign-owned', foreign, new RegExp(`state directory ${foreign} is owned by uid 65534 with mode 0700.*Fix: chown 0 ${foreign} && chmod 0700 ${foreign}`));
    const groupWritable = path.join(ctx.workDir, 'group-writable');
    mkdirSync(groupWritable);
    chmodSync(groupWritable, 0o770);
    await refused('group-writable', groupWritable, /is owned by uid 0 with mode 0770; it must be owned by uid 0 .* and not writable by group or others/);
    const openParent = path.join(ctx.workDir, 'open-parent');
    mkdirSync(path.join(openParent, 'state'), { recursive: true, mode: 0o700 });
    chmodSync(openParent, 0o777);
    await refused('parent-writable', path.join(openParent, 'state'), new RegExp(`the directory ${openParent} above it is owned by uid 0 with mode 0777.*chmod go-w`));
    ctx.figure('untrusted directories refused (nothing created)', refusals.join(', '));

    // 2. Links planted while the daemon is stopped.
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'links', pki });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    let client = await daemon.client('linker', ['writer']);
    await runJobs(client, 10);
    const victim = (await client.listAllJobs())[0]!;
    await daemon.stop();
    const state = daemon.stateDir;
    const logs = path.join(state, 'logs');
    symlinkSync(precious.make('journal-tmp'), path.join(state, 'journal.tmp'));
    symlinkSync(precious.make('spare-symlink'), path.join(logs, '.spare-900'));
    linkSync(precious.make('spare-hardlink'), path.join(logs, '.spare-901'));
    // A job's log replaced by a link to a file that looks like a log: it would be served if followed.
    const victimLog = path.join(logs, `${victim.id}.log`);
    const lookalike = precious.make('log-lookalike', readFileSync(victimLog));
    rmSync(victimLog);
    symlinkSync(lookalike, victimLog);
    await daemon.restart();
    client = await daemon.client('linker', ['writer']);
    const warnings = daemon.process.lines.filter((l) => l.msg.startsWith('state directory damaged'));
    assert.equal(warnings.length, 1, 'one warning');
    for (const name of ['.spare-900', '.spare-901', `${victim.id}.log`]) assert.ok(warnings[0]!.msg.includes(name), `the warning names ${name}: ${warnings[0]!.msg}`);
    const after = await client.getJob(victim.id);
    assert.deepEqual([after.state, Number(after.log.sizeBytes)], ['exited', 16], 'the job stays; its log is gone, never read through the link');
    assert.equal(Number(after.log.droppedBytes), readFileSync(lookalike).length - 16, 'what it held counts as dropped');
    assert.equal((await jobOutput(client, { jobId: victim.id })).stdout.length, 0);
    assert.equal(sumMetric(await daemon.metrics(), 'jobworker_state_damage{what="links_removed"}'), 3);
    await runJobs(client, 10);

    // 3. Spares replaced by links while the daemon runs: jobs take them over without writing through.
    let replaced = 0;
    for (const name of readdirSync(logs).filter((n) => n.startsWith('.spare-'))) {
      rmSync(path.join(logs, name));
      symlinkSync(precious.make(`live-${name}`), path.join(logs, name));
      replaced++;
    }
    await runJobs(client, Math.max(20, replaced + 4));
    ctx.figure('links planted (stopped / running)', `journal.tmp, 2 spares, 1 log / ${replaced} spares`);

    // 4. The journal itself as a link: refused at start, naming it; the real one back: all there.
    await daemon.stop();
    const journal = path.join(state, 'journal');
    renameSync(journal, `${journal}.real`);
    symlinkSync(precious.make('journal'), journal);
    const error = await daemon.restart().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.ok(error !== undefined, 'the daemon started with its journal a link');
    assert.match(error.message, new RegExp(`read journal ${journal}: it is a symbolic link, which jobworker never follows`));
    rmSync(journal);
    renameSync(`${journal}.real`, journal);
    await daemon.restart();
    client = await daemon.client('linker', ['writer']);
    assert.ok((await client.listAllJobs()).length >= 40);

    assert.deepEqual(precious.changed(), [], 'files behind planted links were changed');
    ctx.figure('files behind links changed', `0 of ${precious.count}`);
    ctx.figure('journal as a link', 'refused at start');
    assert.equal(daemon.alive, true);
  },
};
