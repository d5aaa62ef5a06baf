// The cgroup v2 VM itself (npm run test:v2): the kernel behaviour the drivers rely on, proven by
// effect with plain shell jobs and no project code, so a failure here points at the VM, not the
// drivers. Skips anywhere else: it rearranges its own cgroup and enables controllers, which only
// the VM (JOBWORKER_TEST_V2_VM=1, pure cgroup v2, root) allows.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_MAGIC = 0x63677270;
const CONTROLLERS = ['cpu', 'memory', 'io', 'pids'];
const MiB = 1 << 20;

function pureV2(): boolean {
  try {
    return statfsSync(CGROUP_ROOT).type === CGROUP2_MAGIC;
  } catch {
    return false;
  }
}

function skipReason(): string | undefined {
  if (process.env.JOBWORKER_TEST_V2_VM !== '1') {
    return pureV2()
      ? 'runs only inside the cgroup v2 VM (npm run test:v2): it rearranges its own cgroup'
      : 'runs only inside the cgroup v2 VM (npm run test:v2): this host is not pure cgroup v2';
  }
  if (process.getuid?.() !== 0) return 'needs root';
  if (!pureV2()) return `${CGROUP_ROOT} is not cgroup2`;
  return undefined;
}

const skip = skipReason();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const read = (file: string): string => readFileSync(file, 'utf8');

/** "key value" lines (memory.events, cpu.stat, pids.events) as numbers. */
function keyed(file: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of read(file).split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value !== undefined) out.set(key, Number(value));
  }
  return out;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the VM harness provides it`);
  return value;
}

function ownCgroup(): string {
  const line = read('/proc/self/cgroup').trim();
  assert.match(line, /^0::\//, 'pure v2: a single "0::<path>" line');
  return path.join(CGROUP_ROOT, line.slice(3)).replace(/\/$/, '');
}

interface JobResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface Job {
  pid: number;
  done: Promise<JobResult>;
}

/** Runs `script` with /bin/sh, the shell having moved itself into `cgroup` before anything else. */
function startIn(cgroup: string, script: string): Job {
  const started = Date.now();
  const child = spawn('/bin/sh', ['-c', 'echo $$ > "$1" || exit 99; exec /bin/sh -c "$0"', script, path.join(cgroup, 'cgroup.procs')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<JobResult>((resolve, reject) => {
    const timer = setTimeout(() => writeFileSync(path.join(cgroup, 'cgroup.kill'), '1'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { pid: child.pid!, done };
}

const runIn = (cgroup: string, script: string): Promise<JobResult> => startIn(cgroup, script).done;

function populated(cgroup: string): boolean {
  return /^populated 1$/m.test(read(path.join(cgroup, 'cgroup.events')));
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('cgroup v2 VM', { skip }, () => {
  const layout = process.env.JOBWORKER_TEST_CGROUP_LAYOUT;
  let own = ''; // where this process started
  let base = ''; // parent of the job cgroups: `own`, with the controllers enabled for its children
  let leaf: string | undefined; // delegated: where this process moved to
  let subtreeBefore = '';
  let childrenBefore: string[] = [];
  let enableBeforeMove: NodeJS.ErrnoException | undefined;
  const jobs: string[] = [];
  let seq = 0;

  const newJobCgroup = (limits: Record<string, string>): string => {
    const dir = path.join(base, `smoke-${process.pid}-${seq++}`);
    mkdirSync(dir);
    jobs.push(dir);
    for (const [file, value] of Object.entries(limits)) writeFileSync(path.join(dir, file), value);
    return dir;
  };

  const removeJobs = async (): Promise<void> => {
    for (const dir of jobs.splice(0)) {
      if (!existsSync(dir)) continue;
      if (populated(dir)) writeFileSync(path.join(dir, 'cgroup.kill'), '1');
      await until(`${dir} to empty`, () => !populated(dir));
      rmdirSync(dir);
    }
  };

  /** Undoes the setup: controllers off again, back into `own`, the leaf removed. */
  const teardown = async (): Promise<void> => {
    await removeJobs();
    if (!own) return;
    const wanted = subtreeBefore.split(' ').filter(Boolean);
    const extra = read(path.join(base, 'cgroup.subtree_control')).trim().split(' ').filter((c) => c && !wanted.includes(c));
    if (extra.length > 0) writeFileSync(path.join(base, 'cgroup.subtree_control'), extra.map((c) => `-${c}`).join(' '));
    if (leaf && existsSync(leaf)) {
      writeFileSync(path.join(own, 'cgroup.procs'), String(process.pid));
      rmdirSync(leaf);
      leaf = undefined;
    }
  };

  before(() => {
    own = ownCgroup();
    base = own;
    subtreeBefore = read(path.join(own, 'cgroup.subtree_control')).trim();
    childrenBefore = readdirSync(own, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    if (own !== CGROUP_ROOT) {
      // The no-internal-processes rule: a non-root cgroup with a process in it cannot hand
      // controllers to children. Expect EBUSY, then move into a leaf and try again.
      try {
        writeFileSync(path.join(own, 'cgroup.subtree_control'), '+memory');
      } catch (error) {
        enableBeforeMove = error as NodeJS.ErrnoException;
      }
      leaf = path.join(own, `smoke-self-${process.pid}`);
      mkdirSync(leaf);
      writeFileSync(path.join(leaf, 'cgroup.procs'), String(process.pid));
    }
    writeFileSync(path.join(base, 'cgroup.subtree_control'), CONTROLLERS.map((c) => `+${c}`).join(' '));
  });

  after(async () => {
    await teardown(); // idempotent: the last test normally did it already
  });

  it('has only cgroup2 mounted, with the cpu, memory, io and pids controllers', () => {
    const mounts = read('/proc/mounts').split('\n').map((l) => l.split(' '));
    assert.deepEqual(mounts.filter((m) => m[2] === 'cgroup'), [], 'no cgroup v1 hierarchy');
    assert.ok(mounts.some((m) => m[1] === CGROUP_ROOT && m[2] === 'cgroup2'));
    const available = read(path.join(CGROUP_ROOT, 'cgroup.controllers')).trim().split(' ');
    for (const c of CONTROLLERS) assert.ok(available.includes(c), `${c} in ${available.join(' ')}`);
  });

  it('starts the test process where the layout says', () => {
    if (layout === 'root') {
      assert.equal(own, CGROUP_ROOT);
    } else {
      assert.equal(layout, 'delegated');
      assert.notEqual(own, CGROUP_ROOT);
      assert.equal(subtreeBefore, '', 'nothing enabled for children yet');
      const available = read(path.join(own, 'cgroup.controllers')).trim().split(' ');
      for (const c of CONTROLLERS) assert.ok(available.includes(c), `${c} delegated to ${own}`);
    }
  });

  it('enables controllers for children only once no process is left in the parent (root is exempt)', () => {
    if (own === CGROUP_ROOT) {
      assert.equal(leaf, undefined, 'the root cgroup needs no leaf');
    } else {
      assert.equal(enableBeforeMove?.code, 'EBUSY', 'subtree_control with a process inside fails with EBUSY');
      assert.deepEqual(read(path.join(leaf!, 'cgroup.procs')).trim().split('\n').map(Number), [process.pid]);
    }
    const enabled = read(path.join(base, 'cgroup.subtree_control')).trim().split(' ');
    for (const c of CONTROLLERS) assert.ok(enabled.includes(c), `${c} enabled in ${base}`);
    const job = newJobCgroup({});
    for (const file of ['cpu.max', 'memory.max', 'memory.events', 'memory.oom.group', 'io.max', 'pids.max', 'cgroup.kill']) {
      assert.ok(existsSync(path.join(job, file)), `${file} in a job cgroup`);
    }
  });

  it('caps CPU with cpu.max (20% quota: throttled, usage far below wall time)', async () => {
    const job = newJobCgroup({ 'cpu.max': '20000 100000' });
    const spinning = startIn(job, 'while :; do :; done');
    const started = Date.now();
    await sleep(2000);
    writeFileSync(path.join(job, 'cgroup.kill'), '1');
    await spinning.done;
    const wallUs = (Date.now() - started) * 1000;
    const stat = keyed(path.join(job, 'cpu.stat'));
    assert.ok(stat.get('nr_throttled')! > 0, `throttled: ${read(path.join(job, 'cpu.stat'))}`);
    assert.ok(stat.get('usage_usec')! < wallUs * 0.2 * 1.5 + 100_000, `usage ${stat.get('usage_usec')} µs in ${wallUs} µs`);
  });

  it('OOM-kills the whole group under memory.max and counts it in memory.events', async () => {
    const job = newJobCgroup({ 'memory.max': String(32 * MiB), 'memory.swap.max': '0', 'memory.oom.group': '1' });
    // dd fills a 64 MiB buffer from /dev/zero: every page touched, twice the limit.
    const result = await runIn(job, 'sleep 300 & dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived');
    assert.equal(result.signal, 'SIGKILL', `killed, not ${result.code}: ${result.stdout}${result.stderr}`);
    const events = keyed(path.join(job, 'memory.events'));
    assert.ok(events.get('oom')! >= 1, `memory.events: ${read(path.join(job, 'memory.events'))}`);
    assert.ok(events.get('oom_kill')! >= 1, `memory.events: ${read(path.join(job, 'memory.events'))}`);
    assert.ok(events.get('oom_group_kill')! >= 1, 'memory.oom.group killed the lot');
    await until('the group to be empty (sleep killed too)', () => !populated(job));
    if (existsSync(path.join(job, 'memory.peak'))) {
      assert.ok(Number(read(path.join(job, 'memory.peak'))) >= 30 * MiB, 'memory.peak near the limit');
    }
  });

  it('refuses fork with EAGAIN at pids.max and counts it in pids.events', async () => {
    const job = newJobCgroup({ 'pids.max': '4' });
    // perl replaces the shell: perl + 3 children = 4, the fourth fork must fail.
    const perl =
      'my @k; for (1..10) { my $p = fork; if (!defined $p) { print "fork failed: ", ($!{EAGAIN} ? "EAGAIN" : "$!"), " with ", scalar(@k), " children\\n"; last } ' +
      'if (!$p) { sleep 60; exit 0 } push @k, $p } kill "KILL", @k; waitpid($_, 0) for @k;';
    const result = await runIn(job, `exec perl -e '${perl}'`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'fork failed: EAGAIN with 3 children');
    assert.ok(keyed(path.join(job, 'pids.events')).get('max')! >= 1, read(path.join(job, 'pids.events')));
  });

  it('throttles direct reads of the raw virtio disk with io.max', async () => {
    const device = env('JOBWORKER_TEST_BLOCK_DEVICE');
    const majmin = env('JOBWORKER_TEST_BLOCK_DEVICE_MAJMIN');
    assert.equal(read(`/sys/block/${path.basename(device)}/dev`).trim(), majmin);
    const dd = (skipMiB: number) => `dd if=${device} of=/dev/null bs=1M count=8 skip=${skipMiB} iflag=direct 2>&1`;
    const free = await runIn(newJobCgroup({}), dd(0));
    assert.equal(free.code, 0, free.stdout);
    const job = newJobCgroup({ 'io.max': `${majmin} rbps=${2 * MiB}` });
    const throttled = await runIn(job, dd(64));
    assert.equal(throttled.code, 0, throttled.stdout);
    // 8 MiB at 2 MiB/s: about 4 s (the first slice may run ahead a little).
    assert.ok(throttled.ms >= 3000, `8 MiB read in ${throttled.ms} ms under rbps=2MiB`);
    assert.ok(throttled.ms > 2 * free.ms, `throttled ${throttled.ms} ms vs unthrottled ${free.ms} ms`);
    const stat = read(path.join(job, 'io.stat'));
    const rbytes = Number(new RegExp(`^${majmin} .*\\brbytes=(\\d+)`, 'm').exec(stat)?.[1] ?? 0);
    assert.ok(rbytes >= 8 * MiB, `io.stat: ${stat}`);
  });

  it('throttles O_DIRECT writes on the scratch filesystem with io.max on its disk', async () => {
    const dir = env('JOBWORKER_TEST_BLOCK_DIR');
    const majmin = env('JOBWORKER_TEST_BLOCK_DIR_MAJMIN');
    // The filesystem is on a partition; io.max takes the whole disk beneath it.
    const { dev } = statSync(dir);
    const partition = realpathSync(`/sys/dev/block/${(dev >> 8) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`);
    assert.ok(existsSync(path.join(partition, 'partition')), `${dir} is on a partition`);
    assert.equal(read(path.join(path.dirname(partition), 'dev')).trim(), majmin);
    assert.equal(read(`/sys/block/${path.basename(env('JOBWORKER_TEST_BLOCK_DIR_DISK'))}/dev`).trim(), majmin);
    const job = newJobCgroup({ 'io.max': `${majmin} wbps=${2 * MiB}` });
    const file = path.join(dir, `smoke-${process.pid}`);
    const result = await runIn(job, `dd if=/dev/zero of=${file} bs=1M count=6 oflag=direct 2>&1; rm -f ${file}`);
    assert.equal(result.code, 0, result.stdout);
    assert.ok(result.ms >= 2000, `6 MiB written in ${result.ms} ms under wbps=2MiB`);
  });

  it('kills a double-forked job with cgroup.kill, leaving the cgroup unpopulated', async () => {
    const job = newJobCgroup({});
    // The subshell exits at once: its setsid'd sleep is orphaned, in another session, still in the cgroup.
    const running = startIn(job, '( setsid sleep 300 & ); exec sleep 300');
    await until('two sleeps in the cgroup', () => read(path.join(job, 'cgroup.procs')).trim().split('\n').filter(Boolean).length === 2);
    const pids = read(path.join(job, 'cgroup.procs')).trim().split('\n').map(Number);
    assert.ok(pids.some((pid) => pid !== running.pid), 'an escaped grandchild');
    writeFileSync(path.join(job, 'cgroup.kill'), '1');
    assert.equal((await running.done).signal, 'SIGKILL');
    await until('populated 0', () => !populated(job));
    for (const pid of pids) assert.ok(!existsSync(`/proc/${pid}`) || read(`/proc/${pid}/stat`).includes(') Z '), `pid ${pid} gone`);
  });

  it('leaves no cgroup behind and puts itself back', async () => {
    await teardown();
    const children = readdirSync(own, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.deepEqual(children, childrenBefore);
    assert.equal(read(path.join(own, 'cgroup.subtree_control')).trim(), subtreeBefore);
    assert.equal(ownCgroup(), own);
  });
});
