// Issue 14, the audit log: what a client can trigger at will is aggregated. A reader calling
// StartJob in a loop (PERMISSION_DENIED), a writer failing starts in a loop (INVALID_ARGUMENT) and
// connections refused over the per-address cap each write their first line at once, then one
// "(repeated)" line per interval with the count; nothing is lost from the counts.
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';

import { pool, ReliabilityDaemon } from '../helpers/reliability';
import type { Scenario, ScenarioContext } from './scenario';

const INTERVAL_MS = 2000;

export const auditFlood: Scenario = {
  name: 'audit-flood',
  group: 'security',
  title: 'refused calls, failed starts and refused connections in a loop: aggregated audit lines',
  timeoutMs: (soak) => (soak ? 10 * 60_000 : 2 * 60_000),
  async run(ctx: ScenarioContext) {
    const daemon = await ReliabilityDaemon.start(ctx.workDir, { label: 'audit', config: { refusalLogIntervalMs: INTERVAL_MS, connections: { maxPerAddress: 4 } } });
    ctx.defer(async () => assert.deepEqual(await daemon.close(), [], 'cgroups left'));
    const reader = await daemon.client('audit-reader', ['reader']);
    const writer = await daemon.client('audit-writer', ['writer']);
    // Their connections in use before the bare ones come: those never push out a client's connection
    // once it has made a call (src/server/listener.ts).
    await Promise.all([reader.checkHealth(), writer.checkHealth()]);
    const calls = ctx.soak ? 20_000 : 4000;
    const t0 = Date.now();
    const codes = new Map<string, number>();
    const count = (error: unknown) => {
      const code = (error as { codeName?: string }).codeName ?? 'OK';
      codes.set(code, (codes.get(code) ?? 0) + 1);
    };
    await Promise.all([
      pool(calls, 16, async () => reader.startJob({ command: 'true' }).then(() => count(null), count)),
      pool(calls / 4, 8, async () => writer.startJob({ command: '/no/such/program' }).then(() => count(null), count)),
      pool(400, 8, async () => {
        const socket = netConnect({ host: '127.0.0.1', port: daemon.port, localAddress: '127.0.0.5' });
        socket.on('error', () => undefined);
        socket.resume(); // read, so that it learns of the daemon's close
        await once(socket, 'close');
      }),
    ]);
    const seconds = (Date.now() - t0) / 1000;
    await delay(INTERVAL_MS + 500); // the last interval's summary
    assert.equal(codes.get('PERMISSION_DENIED'), calls);
    assert.equal(codes.get('INVALID_ARGUMENT'), calls / 4);
    const total = (msg: string) => {
      const first = daemon.linesWith(msg);
      const repeated = daemon.linesWith(`${msg} (repeated)`);
      const bytes = [...first, ...repeated].reduce((n, l) => n + JSON.stringify(l).length + 1, 0);
      return { lines: first.length + repeated.length, counted: first.length + repeated.reduce((n, l) => n + Number(l.repeated), 0), bytes };
    };
    const refused = total('call refused');
    const notStarted = total('job not started');
    // Bare connections over the per-address cap push out older bare ones (never a client's in use).
    const connections = total('connection closed to make room');
    ctx.figure('flood (s)', seconds.toFixed(1));
    ctx.figure('refused calls: made / audit lines / counted / bytes', `${calls} / ${refused.lines} / ${refused.counted} / ${refused.bytes}`);
    ctx.figure('failed starts: made / audit lines / counted', `${calls / 4} / ${notStarted.lines} / ${notStarted.counted}`);
    ctx.figure('connections closed to make room: audit lines / counted', `${connections.lines} / ${connections.counted}`);
    assert.equal(refused.counted, calls, 'every refused call is counted');
    assert.equal(notStarted.counted, calls / 4, 'every failed start is counted');
    const intervals = Math.ceil((seconds * 1000) / INTERVAL_MS) + 2;
    for (const [what, t] of [['call refused', refused], ['job not started', notStarted], ['connection closed to make room', connections]] as const) {
      assert.ok(t.lines <= 2 * intervals, `${what}: ${t.lines} audit lines in ${intervals} intervals`);
    }
    assert.ok(connections.counted > 0, 'bare connections over the per-address cap are closed to make room, and counted');
    assert.ok(daemon.alive);
  },
};
