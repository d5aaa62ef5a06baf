// The RBAC matrix: every RPC × every role × own / another identity's job, with the exact status.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { readFileSync } from 'node:fs';

import type { ChannelCredentials } from '@grpc/grpc-js';

import { ClientError, JobworkerClient, type JobView, type LogMessageView, type JobChangeView } from '../../src/client';
import { HealthCheckResponse_ServingStatus as ServingStatus, HealthClient } from '../../src/gen/grpc/health/v1/health';
import * as reflectionV1 from '../../src/gen/grpc/reflection/v1/reflection';
import * as reflectionV1alpha from '../../src/gen/grpc/reflection/v1alpha/reflection';
import { craftCertificate, rawChannelCredentials } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { codeOf, startTestServer, type TestServer } from '../helpers/test-server';

let t: TestServer;
let alice: JobworkerClient; // writer
let aliceReader: JobworkerClient; // same identity, reader role only
let bob: JobworkerClient; // writer
let admin: JobworkerClient;
let alicesJob: JobView;
let bobsJob: JobView;

async function firstMessage(client: JobworkerClient, jobId: string): Promise<LogMessageView> {
  for await (const message of client.streamLogs({ jobId, follow: false })) return message;
  throw new Error('no message');
}

async function firstWatch(client: JobworkerClient, jobId: string): Promise<JobChangeView> {
  for await (const message of client.watchJobs({ jobId })) return message;
  throw new Error('no message');
}

/** The first message of a stream, or its error (events.once would reject on 'error'). */
function firstOf<T>(stream: NodeJS.EventEmitter): Promise<{ message: T } | { error: { code: number } }> {
  return new Promise((resolve) => {
    stream.once('data', (message: T) => resolve({ message }));
    stream.once('error', (error: { code: number }) => resolve({ error }));
  });
}

/** What each health and reflection RPC answers for these credentials: a status name per RPC. */
async function serviceInfoCodes(address: string, credentials: ChannelCredentials): Promise<Record<string, string>> {
  const health = new HealthClient(address, credentials);
  const codes: Record<string, string> = {};
  const name = (error: { code?: number } | null) => (error === null ? 'OK' : String(error.code));
  try {
    codes.check = await new Promise((resolve) => health.check({ service: 'jobworker.v1.JobService' }, (e, r) => resolve(e === null && r.status === ServingStatus.SERVING ? 'OK' : name(e))));
    codes.list = await new Promise((resolve) => health.list({}, (e, r) => resolve(e === null && r.statuses[''] !== undefined ? 'OK' : name(e))));
    const watch = health.watch({ service: '' });
    const watched = await firstOf<{ status: number }>(watch);
    codes.watch = 'error' in watched ? name(watched.error) : watched.message.status === ServingStatus.SERVING ? 'OK' : 'wrong status';
    watch.cancel();
  } finally {
    health.close();
  }
  for (const [version, generated] of [['v1', reflectionV1], ['v1alpha', reflectionV1alpha]] as const) {
    const client = new generated.ServerReflectionClient(address, credentials);
    const call = client.serverReflectionInfo();
    call.write({ host: '', messageRequest: { $case: 'listServices', value: '*' } });
    const answered = await firstOf<reflectionV1.ServerReflectionResponse>(call);
    codes[`reflection ${version}`] = 'error' in answered ? name(answered.error) : answered.message.messageResponse?.$case === 'listServicesResponse' ? 'OK' : 'wrong answer';
    call.end();
    client.close();
  }
  return codes;
}

const ALL_OK = { check: 'OK', list: 'OK', watch: 'OK', 'reflection v1': 'OK', 'reflection v1alpha': 'OK' };

describe('role-based access', requireRoot, () => {
  before(async () => {
    t = await startTestServer('rbac');
    alice = await t.client('alice', ['writer']);
    aliceReader = await t.client('alice', ['reader']);
    bob = await t.client('bob', ['writer']);
    admin = await t.client('root-admin', ['admin']);
    alicesJob = await alice.startJob({ command: 'sleep', args: ['1000'] });
    bobsJob = await bob.startJob({ command: 'sleep', args: ['1000'] });
  });
  after(async () => {
    await t?.close();
  });

  it('StartJob: writer and admin may, reader may not', async () => {
    assert.equal(await codeOf(aliceReader.startJob({ command: 'true' })), 'PERMISSION_DENIED');
    const byAdmin = await admin.startJob({ command: 'true' });
    assert.equal(byAdmin.owner, 'root-admin');
    assert.equal(alicesJob.owner, 'alice');
  });

  it('the refusal says who, which role, and what', async () => {
    const error = await aliceReader.startJob({ command: 'true' }).catch((e: unknown) => e);
    assert.ok(error instanceof ClientError);
    assert.equal(error.details, 'alice (role reader) may not call StartJob');
  });

  const reads: [string, (c: JobworkerClient, id: string) => Promise<unknown>][] = [
    ['GetJob', (c, id) => c.getJob(id)],
    ['StreamLogs', (c, id) => firstMessage(c, id)],
    ['WatchJobs', (c, id) => firstWatch(c, id)],
  ];
  for (const [rpc, call] of reads) {
    it(`${rpc}: own job for reader and writer, any job for admin, NOT_FOUND for others' jobs`, async () => {
      assert.equal(await codeOf(call(alice, alicesJob.id)), 'OK');
      assert.equal(await codeOf(call(aliceReader, alicesJob.id)), 'OK');
      assert.equal(await codeOf(call(admin, alicesJob.id)), 'OK');
      assert.equal(await codeOf(call(bob, alicesJob.id)), 'NOT_FOUND');
      assert.equal(await codeOf(call(aliceReader, bobsJob.id)), 'NOT_FOUND');
      // Unknown ids answer exactly like others' jobs: ids cannot be probed.
      assert.equal(await codeOf(call(bob, '00000000-0000-4000-8000-000000000000')), 'NOT_FOUND');
    });
  }

  it('ListJobs: non-admins see only their own jobs, whatever owner they ask for; admins see all', async () => {
    const ids = (jobs: JobView[]) => jobs.map((j) => j.id);
    assert.ok(ids((await alice.listJobs()).jobs).includes(alicesJob.id));
    assert.ok(!ids((await alice.listJobs()).jobs).includes(bobsJob.id));
    assert.deepEqual((await aliceReader.listJobs()).jobs.every((j) => j.owner === 'alice'), true);
    assert.deepEqual((await alice.listJobs({ owner: 'bob' })).jobs, []);
    const all = ids(await admin.listAllJobs());
    assert.ok(all.includes(alicesJob.id) && all.includes(bobsJob.id));
    assert.deepEqual(ids((await admin.listJobs({ owner: 'bob' })).jobs), [bobsJob.id]);
  });

  it('StopJob: reader never, writer only its own (others: NOT_FOUND), admin any', async () => {
    assert.equal(await codeOf(aliceReader.stopJob(alicesJob.id, { graceMs: 0 })), 'PERMISSION_DENIED');
    assert.equal(await codeOf(bob.stopJob(alicesJob.id, { graceMs: 0 })), 'NOT_FOUND');
    const own = await alice.stopJob(alicesJob.id, { graceMs: 0 });
    assert.equal(own.job?.state, 'stopped');
    assert.equal(own.job?.outcome.stoppedBy, 'alice');
    const byAdmin = await admin.stopJob(bobsJob.id, { graceMs: 0 });
    assert.equal(byAdmin.job?.outcome.stoppedBy, 'root-admin');
  });

  it('RemoveJob: reader never, writer only its own, admin any', async () => {
    const done = await alice.startJob({ command: 'true' });
    const bobsDone = await bob.startJob({ command: 'true' });
    await firstMessage(alice, done.id); // finished jobs only can be removed: wait for the end
    for await (const _ of alice.streamLogs({ jobId: done.id, follow: true })) void _;
    for await (const _ of bob.streamLogs({ jobId: bobsDone.id, follow: true })) void _;
    assert.equal(await codeOf(aliceReader.removeJob(done.id)), 'PERMISSION_DENIED');
    assert.equal(await codeOf(bob.removeJob(done.id)), 'NOT_FOUND');
    assert.equal(await codeOf(alice.removeJob(done.id)), 'OK');
    assert.equal(await codeOf(alice.getJob(done.id)), 'NOT_FOUND');
    assert.equal(await codeOf(admin.removeJob(bobsDone.id)), 'OK');
  });

  it('GetIdentityUsage: every role its own identity\'s, only admins another\'s', async () => {
    for (const client of [alice, aliceReader]) {
      assert.equal((await client.getIdentityUsage()).identity, 'alice');
      assert.equal((await client.getIdentityUsage('alice')).identity, 'alice');
      await assert.rejects(client.getIdentityUsage('bob'), (error: unknown) =>
        error instanceof ClientError && error.codeName === 'PERMISSION_DENIED' && error.details === 'alice may see only its own usage (admins: anyone\'s)');
    }
    assert.equal((await admin.getIdentityUsage('bob')).identity, 'bob');
    assert.equal(await codeOf(admin.getIdentityUsage('x'.repeat(257))), 'INVALID_ARGUMENT');
  });

  it('only admins choose the user a job runs as', async () => {
    assert.equal(await codeOf(alice.startJob({ command: 'id', args: ['-u'], user: { uid: 0, gid: 0, groups: [] } })), 'PERMISSION_DENIED');
    const job = await admin.startJob({ command: 'id', args: ['-u'], user: { uid: 65534, gid: 65534, groups: [] } });
    assert.deepEqual(job.user, { uid: 65534, gid: 65534, groups: [], name: 'nobody', kind: 'requested' });
    let out = '';
    for await (const message of admin.streamLogs({ jobId: job.id, follow: true })) for (const c of message.chunks) out += c.data.toString();
    assert.equal(out, '65534\n');
  });

  it('an open stream ends UNAUTHENTICATED when the certificate it was admitted with expires', async () => {
    const notAfter = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3000); // a certificate's times are whole seconds
    const brief = await craftCertificate({ subject: [{ CN: ['brief'] }], issuer: t.pki.ca, roles: ['admin'], notAfter });
    const files = await t.pki.write(brief, 'brief');
    const client = await JobworkerClient.connect({ address: t.address, tls: files });
    try {
      const ended = (async () => {
        try {
          for await (const _ of client.watchJobs({})) void _;
          return { code: 'OK', details: '' };
        } catch (error) {
          assert.ok(error instanceof ClientError, String(error));
          return { code: error.codeName, details: error.details };
        }
      })();
      const { code, details } = await ended;
      assert.ok(Date.now() >= notAfter.getTime(), 'not before the certificate expired');
      assert.equal(code, 'UNAUTHENTICATED');
      assert.equal(details, `the certificate of brief expired on ${notAfter.toISOString()}; reconnect with a renewed one`);
    } finally {
      client.close();
    }
  });

  it('a certificate without roles may call nothing on the job service', async () => {
    const noRoles = await craftCertificate({ subject: [{ CN: ['nobody'] }], issuer: t.pki.ca });
    const stub = t.stub(rawChannelCredentials({ ca: t.pki.ca.certificatePem, cert: noRoles.certificatePem, key: noRoles.privateKeyPem }));
    const code = await new Promise<number>((resolve) => stub.listJobs({ states: [], owner: '', pageSize: 0, pageToken: '', name: '', labelSelector: [] }, (e) => resolve(e?.code ?? 0)));
    assert.equal(code, 7); // PERMISSION_DENIED
  });

  it('health checks and reflection: any verified certificate, with any role or none', async () => {
    const noRoles = await craftCertificate({ subject: [{ CN: ['nobody'] }], issuer: t.pki.ca });
    const unknownRole = await craftCertificate({ subject: [{ CN: ['stranger'] }], issuer: t.pki.ca, roles: ['auditor'] });
    const ca = t.pki.ca.certificatePem;
    const credentials = [
      rawChannelCredentials({ ca, cert: noRoles.certificatePem, key: noRoles.privateKeyPem }),
      rawChannelCredentials({ ca, cert: unknownRole.certificatePem, key: unknownRole.privateKeyPem }),
    ];
    for (const roles of [['reader'], ['writer'], ['admin']] as const) {
      const files = await t.pki.client({ name: `svc-${roles[0]}`, roles: [...roles] });
      credentials.push(rawChannelCredentials({ ca, cert: readFileSync(files.certificatePath, 'utf8'), key: readFileSync(files.privateKeyPath, 'utf8') }));
    }
    for (const [i, c] of credentials.entries()) assert.deepEqual(await serviceInfoCodes(t.address, c), ALL_OK, `credentials #${i}`);
  });

  it('health checks and reflection still need a certificate that names an identity', async () => {
    const noName = await craftCertificate({ subject: [{ O: ['no common name'] }], issuer: t.pki.ca, roles: ['admin'] });
    const codes = await serviceInfoCodes(t.address, rawChannelCredentials({ ca: t.pki.ca.certificatePem, cert: noName.certificatePem, key: noName.privateKeyPem }));
    assert.deepEqual(codes, { check: '16', list: '16', watch: '16', 'reflection v1': '16', 'reflection v1alpha': '16' }); // UNAUTHENTICATED
  });
});
