// The fleet on one machine (docs/fleet.md): a real nats-server -js on loopback with mutual TLS and
// file storage, and three job-worker daemons (w1, w2, w3) with their own state directories and
// cgroup roots serving the pool "batch" (4 jobs each). Everything goes through the daemons' gRPC
// API with users' certificates, as job-cli would. `npm run test:fleet`.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';

import { ClientError, JobworkerClient, type JobView, type StartJobRequest } from '../../src/client';
import { createCa, issueNatsClientCertificate, type TlsFilePaths } from '../../src/pki';
import { leftoverCgroups } from '../helpers/cli-daemon';
import { startFleetMember } from '../helpers/fleet-member';
import { NatsServer, natsServerVersion } from '../helpers/nats-server';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import type { SpawnedDaemon } from '../helpers/spawned-daemon';

const HOSTS = ['w1', 'w2', 'w3'] as const;
const CAPACITY = 4;
const HEARTBEAT_TTL_MS = 3000;
const POOL = 'batch';
const FINAL = new Set(['exited', 'failed', 'stopped', 'lost']);

interface Member {
  host: string;
  stateDir: string;
  cgroupRootName: string;
  daemon: SpawnedDaemon;
  port: number;
  natsTls: TlsFilePaths;
}

let dir: string;
let users: TestPki;
let fleetPki: TestPki;
let nats: NatsServer;
let serverTls: TlsFilePaths;
const members: Member[] = [];
const clients: JobworkerClient[] = [];
let alice: JobworkerClient[];
let bob: JobworkerClient[];
let admin: JobworkerClient[];

function startMember(host: string, stateDir: string, cgroupRootName: string, natsTls: TlsFilePaths): SpawnedDaemon {
  return startFleetMember({ host, stateDir, cgroupRootName, configDir: dir, serverTls, natsTls, natsUrl: nats.url, pool: POOL, capacityJobs: CAPACITY, heartbeatTtlMs: HEARTBEAT_TTL_MS });
}

async function connectAs(name: string, roles: ('reader' | 'writer' | 'admin')[]): Promise<JobworkerClient[]> {
  const tls = await users.client({ name, roles });
  const connected = await Promise.all(members.map((member) => JobworkerClient.connect({ address: `localhost:${member.port}`, tls })));
  clients.push(...connected);
  return connected;
}

/** Watches (through `client`, any daemon) until every id satisfies `done`; answers their last views. */
async function watchUntil(client: JobworkerClient, ids: Iterable<string>, done: (job: JobView) => boolean, timeoutMs: number): Promise<Map<string, JobView>> {
  const wanted = new Set(ids);
  const reached = new Map<string, JobView>();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    for await (const change of client.watchJobs({}, abort.signal)) {
      if (!wanted.has(change.job.id)) continue;
      if (done(change.job)) reached.set(change.job.id, change.job);
      else reached.delete(change.job.id);
      if (reached.size === wanted.size) break;
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
  }
  const missing = [...wanted].filter((id) => !reached.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${wanted.size} jobs did not get there within ${timeoutMs} ms`);
  return reached;
}

const isFinal = (job: JobView) => FINAL.has(job.state);

/** A job's output, by stream, read through `client` (which follows the job to its runner). */
async function outputOf(client: JobworkerClient, id: string): Promise<{ stdout: string; stderr: string; final: JobView | null }> {
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  let final: JobView | null = null;
  for await (const message of client.streamLogs({ jobId: id, follow: true })) {
    for (const chunk of message.chunks) if (chunk.stream !== 'marker') out[chunk.stream].push(Buffer.from(chunk.data));
    if (message.finalStatus !== null) final = message.finalStatus;
  }
  return { stdout: Buffer.concat(out.stdout).toString(), stderr: Buffer.concat(out.stderr).toString(), final };
}

async function codeOf(call: Promise<unknown> | AsyncGenerator<unknown>): Promise<string> {
  try {
    if (Symbol.asyncIterator in call) for await (const _ of call);
    else await call;
  } catch (error) {
    if (error instanceof ClientError) return error.codeName;
    throw error;
  }
  return 'OK';
}

/** The most jobs of `jobs` that ran at the same moment, per host (from their start and finish times). */
function peakConcurrency(jobs: readonly JobView[]): Map<string, number> {
  const peaks = new Map<string, number>();
  for (const host of new Set(jobs.map((job) => job.pool!.runnerHost!))) {
    const events = jobs
      .filter((job) => job.pool!.runnerHost === host)
      .flatMap((job) => [[job.startedAt!.getTime(), 1] as const, [job.finishedAt!.getTime(), -1] as const])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]); // at one instant, ends before starts
    let now = 0;
    let peak = 0;
    for (const [, step] of events) peak = Math.max(peak, (now += step));
    peaks.set(host, peak);
  }
  return peaks;
}

function poolJob(command: string, args: string[], extra: Partial<StartJobRequest> = {}): StartJobRequest {
  return { command, args, pool: POOL, ...extra };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Counts the messages waiting in the pool's stream, with an inspector's own NATS certificate. */
async function queuedMessages(): Promise<number> {
  const tls = await fleetPki.write(await issueNatsClientCertificate(fleetPki.ca, { name: 'inspector' }), `nats-inspector-${randomUUID()}`);
  const nc = await natsConnect({ servers: nats.url, tls: { caFile: tls.caPath, certFile: tls.certificatePath, keyFile: tls.privateKeyPath } });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(`JOBWORKER_POOL_${POOL}`)).state.messages;
  } finally {
    await nc.close();
  }
}

describe('a fleet of three daemons fed through NATS JetStream', requireRoot, () => {
  before(async () => {
    const version = natsServerVersion();
    assert.ok(version !== null, 'nats-server is not installed: apt-get install nats-server (.ci/run does)');
    dir = mkdtempSync(path.join(tmpdir(), 'jobworker-fleet-'));
    users = await createTestPki();
    fleetPki = await createTestPki(await createCa({ commonName: 'jobworker fleet test CA' }));
    serverTls = await users.server();
    nats = await NatsServer.start({ dir, tls: await fleetPki.server(), users: [...HOSTS, 'inspector'].map((host) => `CN=${host}`) });
    for (const host of HOSTS) {
      const natsTls = await fleetPki.write(await issueNatsClientCertificate(fleetPki.ca, { name: host }), `nats-${host}`);
      const stateDir = mkdtempSync(path.join(dir, `state-${host}-`));
      const cgroupRootName = `jobworker-test-${process.pid}-fleet-${host}`;
      members.push({ host, stateDir, cgroupRootName, natsTls, daemon: startMember(host, stateDir, cgroupRootName, natsTls), port: 0 });
    }
    for (const member of members) member.port = await member.daemon.port();
    alice = await connectAs('alice', ['writer']);
    bob = await connectAs('bob', ['writer']);
    admin = await connectAs('ops', ['admin']);
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(members.map((member) => member.daemon.stop()));
    await nats?.stop();
    for (const member of members) assert.deepEqual(leftoverCgroups(member.cgroupRootName), [], `cgroups of ${member.host} left behind`);
    users?.remove();
    fleetPki?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("only the daemons' certificates reach NATS: a user's certificate (another CA) is refused", async () => {
    const tls = await users.client({ name: 'mallory', roles: ['admin'] });
    await assert.rejects(natsConnect({ servers: nats.url, tls: { caFile: fleetPki.caPath, certFile: tls.certificatePath, keyFile: tls.privateKeyPath }, reconnect: false, timeout: 3000 }));
  });

  it('60 jobs submitted through one daemon run on all three, never more than 4 at once on one, each output byte-exact from any daemon', async () => {
    const submitted = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        alice[0]!.startJob(poolJob('sh', ['-c', 'printf "job %s out\\n" "$N"; sleep 0.4; printf "job %s err\\n" "$N" >&2; printf "tail %s" "$N"'], { env: { N: String(i), PATH: '/usr/bin:/bin' } })),
      ),
    );
    for (const job of submitted) {
      // The answer is the record as it stands: queued, or already claimed by a quick daemon.
      assert.ok(['queued', 'starting', 'running'].includes(job.state), job.state);
      assert.equal(job.pool?.name, POOL);
    }
    const finished = await watchUntil(alice[1]!, submitted.map((job) => job.id), isFinal, 60_000);
    const jobs = [...finished.values()];
    assert.deepEqual(new Set(jobs.map((job) => job.state)), new Set(['exited']));
    const perHost = new Map<string, number>();
    for (const job of jobs) perHost.set(job.pool!.runnerHost!, (perHost.get(job.pool!.runnerHost!) ?? 0) + 1);
    assert.deepEqual([...perHost.keys()].sort(), [...HOSTS], `jobs per host: ${JSON.stringify([...perHost])}`);
    for (const [host, peak] of peakConcurrency(jobs)) assert.ok(peak <= CAPACITY, `${host} ran ${peak} jobs at once (capacity ${CAPACITY})`);
    for (const job of jobs) {
      const member = members.find((m) => m.host === job.pool!.runnerHost)!;
      assert.equal(job.pool!.runnerAddress, `localhost:${member.port}`);
      assert.equal(job.pool!.attempts, 1);
    }
    const byId = new Map(submitted.map((job, i) => [job.id, i]));
    await Promise.all(
      submitted.map(async (job, k) => {
        const i = byId.get(job.id)!;
        const output = await outputOf(alice[k % 3]!, job.id);
        assert.equal(output.stdout, `job ${i} out\ntail ${i}`);
        assert.equal(output.stderr, `job ${i} err\n`);
        assert.equal(output.final?.state, 'exited');
      }),
    );
  });

  it('a duplicate submit (the same job id, to any daemon) runs once', async () => {
    const id = randomUUID();
    const request = poolJob('sh', ['-c', 'echo ran; sleep 0.3'], { jobId: id });
    const answers = await Promise.all([alice[0]!.startJob(request), alice[1]!.startJob(request), alice[2]!.startJob(request)]);
    assert.deepEqual(answers.map((job) => job.id), [id, id, id]);
    await watchUntil(alice[2]!, [id], isFinal, 30_000);
    const again = await alice[1]!.startJob(request);
    assert.equal(again.id, id);
    assert.equal(again.state, 'exited');
    // Ran once: one daemon made it a local job, with a log (a job cannot leave a mark outside its
    // private /tmp and scratch directory, so the daemons' state directories are the witnesses).
    const ranOn = members.filter((member) => readdirSync(path.join(member.stateDir, 'logs')).some((name) => name.startsWith(id)));
    assert.equal(ranOn.length, 1, `it ran on ${ranOn.map((member) => member.host).join(', ') || 'no daemon'}`);
    assert.equal((await outputOf(alice[0]!, id)).stdout, 'ran\n');
    assert.equal(await codeOf(bob[0]!.startJob(request)), 'ALREADY_EXISTS');
  });

  it('RBAC holds across hosts: another writer cannot see, stream or stop a pool job; its owner stops it from any daemon', async () => {
    const job = await alice[0]!.startJob(poolJob('sleep', ['60']));
    const running = (await watchUntil(admin[1]!, [job.id], (j) => j.state === 'running', 20_000)).get(job.id)!;
    for (const client of bob) {
      assert.equal(await codeOf(client.getJob(job.id)), 'NOT_FOUND');
      assert.equal(await codeOf(client.stopJob(job.id, { graceMs: 0 })), 'NOT_FOUND');
      assert.equal(await codeOf(client.streamLogs({ jobId: job.id })), 'NOT_FOUND');
      assert.ok(!(await client.listAllJobs()).some((j) => j.id === job.id));
    }
    const reader = await connectAs('carol', ['reader']);
    assert.equal(await codeOf(reader[0]!.startJob(poolJob('true', []))), 'PERMISSION_DENIED');
    for (const client of admin) assert.equal((await client.getJob(job.id)).pool?.runnerHost, running.pool!.runnerHost);
    // Ask a daemon that does not run it: the client follows the answer to the runner.
    const elsewhere = members.findIndex((m) => m.host !== running.pool!.runnerHost);
    const stopped = await alice[elsewhere]!.stopJob(job.id, { graceMs: 0 });
    assert.equal(stopped.job.state, 'stopped');
    assert.equal(stopped.job.outcome.stoppedBy, 'alice');
  });

  it("a pool job id chosen to be another identity's local job never hides, removes or takes over that job", async () => {
    const local = await bob[0]!.startJob({ command: 'sh', args: ['-c', 'echo bob; exit 7'] });
    await watchUntil(bob[0]!, [local.id], isFinal, 20_000);
    // Where the local job is, the id is refused at once.
    assert.equal(await codeOf(alice[0]!.startJob(poolJob('sh', ['-c', 'echo alice'], { jobId: local.id }))), 'ALREADY_EXISTS');
    // Elsewhere it is queued (that daemon cannot know): if it lands where bob's job is, that runner refuses it.
    const pooled = await alice[1]!.startJob(poolJob('sh', ['-c', 'echo alice'], { jobId: local.id }));
    const final = (await watchUntil(alice[1]!, [local.id], isFinal, 30_000)).get(local.id)!;
    if (final.pool!.runnerHost === members[0]!.host) assert.match(final.outcome.reason ?? '', /another identity's job on this host/);
    else assert.equal(final.state, 'exited');
    assert.equal(pooled.id, local.id);
    // Bob still sees his own job, exit code and output, from its daemon; alice sees hers there too.
    const bobs = await bob[0]!.getJob(local.id);
    assert.deepEqual([bobs.owner, bobs.state, bobs.outcome.exitCode], ['bob', 'failed', 7]);
    assert.equal((await outputOf(bob[0]!, local.id)).stdout, 'bob\n');
    assert.ok((await bob[0]!.listAllJobs()).some((j) => j.id === local.id && j.owner === 'bob'));
    assert.equal((await alice[0]!.getJob(local.id)).owner, 'alice');
  });

  it('a stop of a queued job takes it out of the queue', async () => {
    // 2 GiB fits no daemon (1 GiB each): it stays queued.
    const job = await alice[1]!.startJob(poolJob('true', [], { limits: { memoryBytes: 2 * 1024 ** 3 } }));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await alice[2]!.getJob(job.id)).state, 'queued');
    assert.equal(await queuedMessages(), 1);
    const stopped = await alice[0]!.stopJob(job.id);
    assert.equal(stopped.job.state, 'stopped');
    assert.match(stopped.job.outcome.reason ?? '', /while queued/);
    assert.equal(await queuedMessages(), 0);
  });

  it(`kill -9 of a daemon: its jobs are lost within the heartbeat TTL (${HEARTBEAT_TTL_MS} ms); those with retries run again elsewhere`, async () => {
    const jobs = await Promise.all(Array.from({ length: 3 * CAPACITY }, (_, i) => alice[0]!.startJob(poolJob('sleep', ['300'], { retries: i % 2 }))));
    const running = await watchUntil(alice[0]!, jobs.map((job) => job.id), (job) => job.state === 'running', 30_000);
    const victim = members[2]!;
    const onVictim = [...running.values()].filter((job) => job.pool!.runnerHost === victim.host);
    assert.equal(onVictim.length, CAPACITY);
    const killedAt = Date.now();
    victim.daemon.child.kill('SIGKILL');
    await victim.daemon.exited;
    try {
    const declared = await watchUntil(admin[0]!, onVictim.map((job) => job.id), (job) => job.pool!.runnerHost !== victim.host || job.state === 'lost', 4 * HEARTBEAT_TTL_MS);
    const elapsedMs = Date.now() - killedAt;
    assert.ok(elapsedMs <= HEARTBEAT_TTL_MS, `the victim's jobs were declared lost ${elapsedMs} ms after the kill`);
    for (const job of onVictim) {
      const now = declared.get(job.id)!;
      if (job.pool!.retries === 0) {
        assert.equal(now.state, 'lost');
        assert.match(now.outcome.reason ?? '', /w3 stopped sending heartbeats/);
      } else {
        assert.notEqual(now.state, 'lost');
      }
    }
    // Make room on the living daemons: the retried jobs run there.
    const others = [...running.values()].filter((job) => job.pool!.runnerHost !== victim.host);
    await Promise.all(
      others.map((job) =>
        alice[0]!.stopJob(job.id, { graceMs: 0 }).catch((error: unknown) => {
          throw new Error(`stop of ${job.id} on ${job.pool!.runnerHost} (${job.pool!.runnerAddress}; daemons at ${members.map((m) => m.port).join(', ')}): ${String(error)}`);
        }),
      ),
    );
    const retried = onVictim.filter((job) => job.pool!.retries === 1).map((job) => job.id);
    const rerun = await watchUntil(alice[1]!, retried, (job) => job.state === 'running', 30_000);
    for (const job of rerun.values()) {
      assert.notEqual(job.pool!.runnerHost, victim.host);
      assert.equal(job.pool!.attempts, 2);
    }
    await Promise.all(retried.map((id) => alice[0]!.stopJob(id, { graceMs: 0 })));
    console.log(`# lost within ${elapsedMs} ms of the kill (heartbeat TTL ${HEARTBEAT_TTL_MS} ms)`);
    } finally {
      // The victim comes back on its state directory: its recovery kills what the killed daemon left.
      victim.daemon = startMember(victim.host, victim.stateDir, victim.cgroupRootName, victim.natsTls);
      victim.port = await victim.daemon.port();
    }
  });

  it('NATS killed (-9) and restarted mid-run loses no submitted job', async () => {
    const live = members.slice(0, 2);
    const jobs = await Promise.all(
      Array.from({ length: 24 }, (_, i) => alice[1]!.startJob(poolJob('sh', ['-c', `sleep 0.5; echo done ${i}`]))),
    );
    await nats.kill();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await nats.run();
    const finished = await watchUntil(alice[0]!, jobs.map((job) => job.id), isFinal, 90_000);
    assert.deepEqual(new Set([...finished.values()].map((job) => job.state)), new Set(['exited']));
    for (const [i, job] of jobs.entries()) {
      if (i % 6 !== 0) continue;
      assert.equal((await outputOf(alice[i % live.length]!, job.id)).stdout, `done ${i}\n`);
    }
  });

  it('measures submission-to-running latency and throughput: the pool against a local start', async () => {
    const latency = async (pool: boolean): Promise<number[]> => {
      const samples: number[] = [];
      for (let i = 0; i < 40; i++) {
        const submittedAt = Date.now();
        const job = await alice[0]!.startJob(pool ? poolJob('true', []) : { command: 'true' });
        const done = (await watchUntil(alice[0]!, [job.id], isFinal, 20_000)).get(job.id)!;
        samples.push(done.startedAt!.getTime() - submittedAt);
      }
      return samples;
    };
    const throughput = async (pool: boolean): Promise<number> => {
      const started = Date.now();
      const ids: string[] = [];
      const queue = Array.from({ length: 150 }, (_, i) => i);
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (queue.shift() !== undefined) ids.push((await alice[0]!.startJob(pool ? poolJob('true', []) : { command: 'true' })).id);
        }),
      );
      await watchUntil(alice[0]!, ids, isFinal, 120_000);
      return (ids.length * 1000) / (Date.now() - started);
    };
    const local = await latency(false);
    const pooled = await latency(true);
    const localRate = await throughput(false);
    const poolRate = await throughput(true);
    const figures = {
      latencyMs: {
        local: { p50: percentile(local, 50), p99: percentile(local, 99) },
        pool: { p50: percentile(pooled, 50), p99: percentile(pooled, 99) },
      },
      jobsPerSecond: { oneDaemon: Math.round(localRate), pool: Math.round(poolRate) },
    };
    console.log(`# fleet figures ${JSON.stringify(figures)} ratios: latency p50 ${(figures.latencyMs.pool.p50 / Math.max(1, figures.latencyMs.local.p50)).toFixed(1)}x, p99 ${(figures.latencyMs.pool.p99 / Math.max(1, figures.latencyMs.local.p99)).toFixed(1)}x, throughput ${(poolRate / localRate).toFixed(2)}x`);
    assert.ok(poolRate > 0 && localRate > 0);
  });
});
