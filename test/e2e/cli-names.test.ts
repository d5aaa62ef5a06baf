// Job names and labels end to end: the real job-cli against a real daemon over mutual TLS. A name
// works wherever an id does (query, stream, wait, events, stop, rm), is one owner's until the job is
// removed (a second start is ALREADY_EXISTS, exit 1), is looked up among the caller's own jobs first
// and, for admins, among everyone's (several owners: asked for the id); a reader never learns of
// another owner's job by its name. Labels filter `list`. Jobs are released by the test (a file
// appearing), so every wait is on an event.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { TlsFilePaths } from '../../src/pki';
import { show, type CliProcess, type CliResult } from '../helpers/cli';
import { CliTestbed, expectExit } from '../helpers/cli-testbed';
import { requireRoot } from '../helpers/root';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const IDENTITIES = { alice: ['writer'], bob: ['writer'], ada: ['admin'], rita: ['reader'] } as const;
type Who = keyof typeof IDENTITIES;

let testbed: CliTestbed;
const who = {} as Record<Who, TlsFilePaths>;

function cli(args: string[], as: Who = 'alice'): Promise<CliResult> {
  return testbed.cli(args, who[as]);
}

function spawn(args: string[], as: Who = 'alice'): CliProcess {
  return testbed.spawn(args, who[as]);
}

/** Starts a job with these extra flags that prints "ready", then exits 0 once the test opens its gate. */
async function gatedJob(flags: string[], as: Who = 'alice'): Promise<{ id: string; open: () => void }> {
  const gate = testbed.gate();
  const result = await cli(['start', ...flags, '--', 'sh', '-c', `echo ready; ${gate.waitLoop}`], as);
  expectExit(result, 0);
  const id = result.stdout.trim();
  assert.match(id, UUID);
  return { id, open: gate.open };
}

async function startDone(flags: string[], as: Who = 'alice'): Promise<string> {
  const result = await cli(['start', ...flags, '--', 'true'], as);
  expectExit(result, 0);
  const id = result.stdout.trim();
  expectExit(await cli(['wait', id], as), 0);
  return id;
}

async function queryJson(job: string, as: Who = 'alice'): Promise<Record<string, unknown>> {
  const result = await cli(['query', '--json', job], as);
  expectExit(result, 0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function listedIds(args: string[], as: Who = 'alice'): Promise<string[]> {
  const result = await cli(['list', '--json', ...args], as);
  expectExit(result, 0);
  return (JSON.parse(result.stdout) as { id: string }[]).map((job) => job.id);
}

describe('job names and labels through job-cli', requireRoot, () => {
  before(async () => {
    testbed = await CliTestbed.start('cli-names');
    for (const [name, roles] of Object.entries(IDENTITIES)) who[name as Who] = await testbed.pki.client({ name, roles: [...roles] });
  });

  after(async () => {
    await testbed?.stop();
  });

  it('a name works wherever an id does: query, stream, wait, events, stop, rm; then it is free again', async () => {
    const job = await gatedJob(['--name', 'web', '--label', 'tier=front', '--label', 'team=ops, infra']);
    const status = await queryJson('web');
    assert.equal(status.id, job.id);
    assert.equal(status.name, 'web');
    assert.deepEqual(status.labels, { tier: 'front', team: 'ops, infra' }, 'a value keeps its comma: --label is never split');
    const text = await cli(['query', 'web']);
    expectExit(text, 0);
    assert.match(text.stdout, /^Name +web$/m);
    assert.match(text.stdout, /^Labels +tier=front 'team=ops, infra'$/m);

    const stream = spawn(['stream', 'web']);
    await stream.waitFor('ready\n');
    const wait = spawn(['wait', 'web']);
    // The watch is in place once its current line is out: then the job is stopped, by its name.
    const events = spawn(['events', '--json', '--current', 'web']);
    await events.waitFor('"state":"running"');
    const stop = await cli(['stop', 'web']);
    expectExit(stop, 0);
    assert.match(stop.stdout, new RegExp(`^${job.id}: `));
    expectExit(await wait.result, 143);
    expectExit(await stream.result, 143);
    const ended = await events.result;
    expectExit(ended, 0);
    assert.match(ended.stdout, /"state":"stopped"/);
    assert.match(ended.stdout, /"name":"web"/);

    const current = await cli(['events', '--current', '--json', 'web']);
    expectExit(current, 0);
    assert.match(current.stdout, new RegExp(`"previousState":null,"state":"stopped","job":\\{"id":"${job.id}","name":"web"`));

    const removed = await cli(['rm', 'web']);
    expectExit(removed, 0);
    const gone = await cli(['query', 'web']);
    expectExit(gone, 1);
    assert.match(gone.stderr, /^job-cli: no job named web$/m);
    const again = await startDone(['--name', 'web']);
    assert.equal((await queryJson('web')).id, again, 'the name is free once its job is removed');
    expectExit(await cli(['rm', 'web']), 0);
  });

  it('a second job of one owner with a name in use: ALREADY_EXISTS naming the job and the way out, exit 1; nothing started', async () => {
    const running = await gatedJob(['--name', 'build']);
    const refused = await cli(['start', '--name', 'build', '--', 'true']);
    expectExit(refused, 1);
    assert.equal(refused.stdout, '');
    assert.equal(refused.stderr, `job-cli: "build" is already the name of job ${running.id} (running); choose another name, or remove that job first (job-cli stop build, then job-cli rm build)\n`);
    const runRefused = await cli(['run', '--name', 'build', '--', 'true']);
    expectExit(runRefused, 1);
    assert.match(runRefused.stderr, /is already the name of job/);
    assert.deepEqual(await listedIds(['--all', '--name', 'build']), [running.id], 'the refused starts left no job');
    running.open();
    expectExit(await cli(['wait', 'build']), 0);
    const finished = await cli(['start', '--name', 'build', '--', 'true']);
    expectExit(finished, 1);
    assert.match(finished.stderr, /\(exited\); choose another name, or remove that job first \(job-cli rm build\)\n$/);
    expectExit(await cli(['rm', 'build']), 0);
  });

  it('each owner has its own names; an admin gets its own job, or the only one of that name, or is asked for the id; a reader learns nothing of others\' jobs', async () => {
    const alices = await startDone(['--name', 'shared']);
    const bobs = await startDone(['--name', 'shared'], 'bob');
    assert.equal((await queryJson('shared', 'alice')).id, alices);
    assert.equal((await queryJson('shared', 'bob')).id, bobs);

    const ambiguous = await cli(['query', 'shared'], 'ada');
    expectExit(ambiguous, 1);
    assert.match(ambiguous.stderr, new RegExp(`^job-cli: 2 jobs of other owners are named shared \\(alice's ${alices}, bob's ${bobs}\\) and you have none of that name: give the job's id$`, 'm'));
    const adas = await startDone(['--name', 'shared'], 'ada');
    assert.equal((await queryJson('shared', 'ada')).id, adas, 'the admin\'s own job comes first');

    const onlyBob = await startDone(['--name', 'bobs-only'], 'bob');
    for (const [args, as] of [[['query', 'shared'], 'rita'], [['query', 'bobs-only'], 'rita'], [['rm', 'bobs-only'], 'alice']] as const) {
      const refused = await cli([...args], as);
      expectExit(refused, 1);
      const name = args[1];
      assert.match(refused.stderr, new RegExp(`^job-cli: no job named ${name}$`, 'm'), 'the same answer as for a name no one uses');
    }
    assert.equal((await queryJson('bobs-only', 'ada')).id, onlyBob, 'one job of that name among those the admin sees');
    expectExit(await cli(['rm', 'bobs-only'], 'ada'), 0);
    expectExit(await cli(['query', onlyBob], 'bob'), 1);

    assert.deepEqual((await listedIds(['--all', '--name', 'shared'], 'ada')).sort(), [alices, bobs, adas].sort(), 'admins list every owner\'s');
    assert.deepEqual(await listedIds(['--all', '--name', 'shared'], 'bob'), [bobs]);
    for (const [job, as] of [[alices, 'alice'], [bobs, 'bob'], [adas, 'ada']] as const) expectExit(await cli(['rm', job], as), 0);
  });

  it('list filters by labels (KEY=VALUE, KEY; all must match) and by name; the table shows names', async () => {
    const front = await startDone(['--name', 'front-1', '--label', 'tier=front', '--label', 'example.com/team=web']);
    const back = await startDone(['--label', 'tier=back', '--label', 'example.com/team=web']);
    const plain = await startDone([]);
    assert.deepEqual(await listedIds(['--all', '--label', 'tier=front']), [front]);
    assert.deepEqual(await listedIds(['--all', '--label', 'example.com/team=web']), [front, back]);
    assert.deepEqual(await listedIds(['--all', '--label', 'tier', '--label', 'example.com/team=web']), [front, back]);
    assert.deepEqual(await listedIds(['--all', '--label', 'tier=front', '--label', 'tier=back']), []);
    assert.deepEqual(await listedIds(['--all', '--label', 'tier=Front']), [], 'values are case-sensitive');
    assert.deepEqual(await listedIds(['--all', '--name', 'front-1']), [front]);
    assert.ok((await listedIds(['--all'])).includes(plain));
    const table = await cli(['list', '--all']);
    expectExit(table, 0);
    assert.match(table.stdout, /^ID +NAME +STATE /);
    assert.match(table.stdout, new RegExp(`^${front}  front-1 +exited `, 'm'));
    assert.match(table.stdout, new RegExp(`^${plain}  - +exited `, 'm'));
    for (const job of [front, back, plain]) expectExit(await cli(['rm', job]), 0);
  });

  it('labels, filters and JOB arguments refused: usage errors naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      // job-cli checks names itself (test/e2e/cli-usage.test.ts); the daemon checks what a label key
      // and value may be, and what a listing's filters may be: its refusal names the flag.
      [['start', '--label', 'bad key=x', '--', 'true'], /^job-cli: --label: label key "bad key" must be 1-63 letters/],
      [['start', '--label', `k=${'v'.repeat(256)}`, '--', 'true'], /^job-cli: --label: the value of label k is longer than 255 bytes\n/],
      [['run', '--label', 'k=line\nbreak', '--', 'true'], /^job-cli: --label: the value of label k must not contain control characters/],
      [['list', '--label', 'bad key'], /^job-cli: --label: label key "bad key" must be .*\(a term is "key=value" or "key"\)\n/],
      [['list', '--name=-x'], /^job-cli: --name: must be 1-64 letters/],
      [['query', '../etc'], /^job-cli: JOB: expected a job id \(a UUID, or its first characters\) or a job name, got "\.\.\/etc"\n/],
    ];
    const jobsBefore = (await listedIds(['--all'])).length;
    for (const [args, message] of cases) {
      const result = await cli(args);
      expectExit(result, 2);
      assert.match(result.stderr, message, show(result));
      assert.equal(result.stdout, '');
    }
    assert.equal((await listedIds(['--all'])).length, jobsBefore, 'nothing was started');
  });

  it('a name that is also the start of an id is tried as a name first, then as the start of an id', async () => {
    const id = await startDone([]);
    const prefix = id.slice(0, 6);
    assert.equal((await queryJson(prefix)).id, id, 'no job of that name: the start of an id');
    const named = await startDone(['--name', prefix]);
    assert.equal((await queryJson(prefix)).id, named, 'a job of that name: the name wins, as in docker');
    for (const job of [id, named]) expectExit(await cli(['rm', job]), 0);
  });
});
