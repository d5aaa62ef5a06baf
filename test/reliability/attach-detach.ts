// A job writing as fast as it can while 100 followers attach and detach at random: each attaches
// from the start, from where it last stopped (its last next_offset), or from the live end (the
// job's current log size), reads for a random while, and cancels. Afterwards every session is
// checked against the finished log record by record: each starts exactly where it asked, every
// record follows the previous one (no gap, no duplicate) and is identical to the log's; a follower
// that resumed continues exactly where it left off. The log itself is exactly "1\n2\n…N\n".
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import { mib, prng, ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';
import { checkContiguous, indexLog, readSession, type Session } from './streams';

interface Attach {
  follower: number;
  mode: 'start' | 'resume' | 'live';
  session: Session;
  /** For 'resume': the offset the previous session of this follower ended at. */
  resumedFrom?: number;
}

function sequenceDigest(n: number): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  let bytes = 0;
  let batch = '';
  for (let i = 1; i <= n; i++) {
    batch += `${i}\n`;
    if (batch.length > 1 << 16) {
      hash.update(batch);
      bytes += batch.length;
      batch = '';
    }
  }
  hash.update(batch);
  bytes += batch.length;
  return { sha256: hash.digest('hex'), bytes };
}

export const attachDetach: Scenario = {
  name: 'attach-detach',
  group: 'load',
  title: 'a job writing at full speed while 100 followers attach and detach at random',
  timeoutMs: (soak) => (soak ? 3600_000 : 8 * 60_000),
  async run(ctx: ScenarioContext) {
    const followers = 100;
    const lines = ctx.soak ? 300_000_000 : 50_000_000;
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'attach', config: { defaults: { logMaxBytes: 4 * 2 ** 30 } } });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const writer = await daemon.client('racer', ['writer']);
    const readers = await Promise.all(Array.from({ length: 20 }, () => daemon.client('racer', ['reader'])));
    const random = prng(ctx.seed);

    // mawk writes the numbers as fast as it can (~130 MB/s alone on this machine).
    const job = await writer.startJob({ command: 'awk', args: [`BEGIN { for (i = 1; i <= ${lines}; i++) print i }`] });
    const attaches: Attach[] = [];
    let running = true;
    const t0 = Date.now();
    const done = (async () => {
      while ((await writer.getJob(job.id)).state === 'running' && !ctx.signal.aborted) await delay(200);
      running = false;
    })();

    await Promise.all(
      Array.from({ length: followers }, async (_, f) => {
        let last: number | undefined;
        const client = readers[f % readers.length]!;
        while (running && !ctx.signal.aborted) {
          const r = random();
          const mode: Attach['mode'] = r < 0.5 && last !== undefined ? 'resume' : r < 0.7 ? 'start' : 'live';
          let from = 0;
          if (mode === 'resume') from = last!;
          else if (mode === 'live') from = Number((await client.getJob(job.id)).log!.sizeBytes);
          const readFor = 10 + random() * 400;
          const until = Date.now() + readFor;
          const maxBytes = Math.floor(random() * 4 * (1 << 20));
          const session = await readSession(client, { jobId: job.id, follow: true, fromOffset: from }, { detach: (s) => Date.now() >= until || s.bytes >= maxBytes, signal: ctx.signal });
          attaches.push({ follower: f, mode, session, ...(mode === 'resume' ? { resumedFrom: last } : {}) });
          const tail = session.records.at(-1);
          last = tail?.nextOffset ?? (from < 16 ? 16 : from);
          if (session.end !== 'detached' && session.end !== 'end') throw new Error(`follower ${f}: stream failed with ${session.end}`);
          await delay(random() * 100);
        }
      }),
    );
    await done;
    const seconds = (Date.now() - t0) / 1000;

    const final = await writer.getJob(job.id);
    assert.equal(final.state, 'exited', final.outcome.reason ?? undefined);
    const expected = sequenceDigest(lines);
    const log = await indexLog(writer, job.id);
    const whole = await readSession(writer, { jobId: job.id });
    assert.equal(whole.stdout.digest('hex'), expected.sha256, 'the log is not exactly 1..N');
    assert.equal(whole.bytes, expected.bytes);

    let bytes = 0;
    let records = 0;
    const modes = { start: 0, resume: 0, live: 0 };
    for (const [i, a] of attaches.entries()) {
      const what = `attach ${i} (follower ${a.follower}, ${a.mode} from ${a.session.from})`;
      checkContiguous(a.session, log, what);
      if (a.mode === 'resume') assert.equal(a.session.from, a.resumedFrom, `${what}: did not resume where it stopped`);
      bytes += a.session.bytes;
      records += a.session.records.length;
      modes[a.mode]++;
    }
    ctx.figure('followers', followers);
    ctx.figure('attaches', attaches.length);
    ctx.figure('start/resume/live', `${modes.start}/${modes.resume}/${modes.live}`);
    ctx.figure('log', mib(expected.bytes));
    ctx.figure('log records', log.size);
    ctx.figure('records checked', records);
    ctx.figure('bytes checked', mib(bytes));
    ctx.figure('gaps or duplicates', 0);
    ctx.figure('seconds', Math.round(seconds));
    assert.ok(attaches.length >= followers * 2, `only ${attaches.length} attaches happened while the job ran`);
    assert.equal(await daemon.activeStreams(), 0, 'streams left open');
  },
};
