// Isolation (SpawnOptions.isolation) against real processes, namespaces and cgroups, as a hostile
// job would try it: each namespace proven by its effect, privileges, signals through jobworker-init,
// exec failures still synchronous, nothing left behind. Every suite runs on both spawn paths (clone3
// and the gated fork): they share the child's steps, but not its memory (CLONE_VM or a copy).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { OpenedCgroupDriver } from '../../src/cgroup/index';
import { SpawnError, spawnProcess, type Isolation, type NativeProcess, type SpawnOptions } from '../../src/native';
import { closeTestDriver, createJobCgroup, findCgroupDirs, openTestDriver, TEST_ROOT_NAME, type CreatedCgroup } from '../helpers/cgroup-jobs';
import { readCapturedOutput, waitForStdout } from '../helpers/log';
import { openFdCount, zombieChildren } from '../helpers/proc';
import { requireRoot } from '../helpers/root';

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };
const NOBODY = { uid: 65534, gid: 65534, groups: [] as number[] };
const NAMESPACES: Isolation = { pid: true, mount: true, ipc: true, uts: true, cgroup: true, network: 'host' };

/** keyctl(2) and add_key(2) by number, for perl's syscall() in the keyring tests. */
const KEYCTL_SYSCALLS: Partial<Record<NodeJS.Architecture, { addKey: number; keyctl: number }>> = {
  x64: { addKey: 248, keyctl: 250 },
  arm64: { addKey: 217, keyctl: 219 },
};

let dir: string;
let seq = 0;
let driver: OpenedCgroupDriver;
const cgroups: CreatedCgroup[] = [];

// What the whole file must leave as it found it (both spawn paths, every failure included).
let fdsBefore: number;
let mountsBefore: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-isolation-'));
  chmodSync(dir, 0o755); // the jobs run as nobody
  driver = await openTestDriver();
  // One job first: what the addon holds for the process's lifetime from its first isolated spawn
  // (the capture thread's epoll and wake-up descriptors, jobworker-init's descriptor) is no leak.
  await run({ script: 'true' });
  fdsBefore = openFdCount();
  mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
});
after(async () => {
  const fdsAfter = openFdCount();
  for (const cgroup of cgroups) await cgroup.destroy().catch(() => undefined);
  await closeTestDriver(driver);
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(zombieChildren(), [], 'no job left unreaped');
  assert.equal(fdsAfter, fdsBefore, 'no descriptor left open');
  assert.equal(readFileSync('/proc/self/mountinfo', 'utf8'), mountsBefore, 'no mount left in the host\'s namespace');
  assert.deepEqual(findCgroupDirs(TEST_ROOT_NAME), [], 'every cgroup of this file is removed');
});

type RunOptions = Omit<SpawnOptions, 'logPath' | 'command'> & { script: string };

function start({ script, ...options }: RunOptions): { proc: NativeProcess; log: string } {
  const log = path.join(dir, `job-${seq++}.log`);
  const proc = spawnProcess({ command: 'sh', args: ['-c', script], env: ENV, ...NOBODY, isolation: NAMESPACES, ...options, logPath: log });
  return { proc, log };
}

async function run(options: RunOptions) {
  const { proc, log } = start(options);
  const exit = await proc.exited;
  await proc.closed;
  const output = await readCapturedOutput(log);
  return { proc, exit, stdout: output.stdout.toString(), stderr: output.stderr.toString() };
}

/** A fresh directory on the host, readable by the jobs' user. */
function hostDir(label: string): string {
  const made = path.join(dir, `${label}-${seq++}`);
  mkdirSync(made, { mode: 0o755 });
  chmodSync(made, 0o755);
  return made;
}

async function jobCgroup(limits = {}): Promise<CreatedCgroup> {
  const cgroup = await createJobCgroup(driver, `iso-${process.pid}-${seq++}`, limits);
  cgroups.push(cgroup);
  return cgroup;
}

for (const forceGatedFork of [false, true]) {
  const pathName = forceGatedFork ? 'gated fork' : 'clone3';

  describe(`isolation, ${pathName}: each namespace by its effect`, requireRoot, () => {
    it('the command is PID 1\'s only child; PID 1 is jobworker-init; /proc shows only the job', async () => {
      const { proc, exit, stdout } = await run({
        forceGatedFork,
        // PID 1 forks the command (vfork: it waits for the command's exec) and only then execs init:
        // the command's first instructions can see PID 1 still as the daemon's clone ("node"). No
        // event marks init's exec inside the job, so the script waits for it, bounded (2 s).
        script:
          'echo "$$ $PPID"; i=0; while [ "$(cat /proc/1/comm)" != jobworker-init ] && [ $i -lt 200 ]; do i=$((i+1)); sleep 0.01; done; ' +
          'cat /proc/1/comm; for p in /proc/[0-9]*; do cat $p/comm; done | sort -u | tr "\\n" " "',
      });
      assert.equal(exit.code, 0);
      assert.equal(proc.gatedFork, forceGatedFork);
      const [ids, init, comms] = stdout.split('\n');
      assert.equal(ids, '2 1');
      assert.equal(init, 'jobworker-init');
      // sh, the loop's cat, sleep and sort/tr, and init: no process of the host (node, the test runner).
      for (const comm of comms!.trim().split(' ')) assert.ok(['jobworker-init', 'sh', 'cat', 'sleep', 'sort', 'tr'].includes(comm), `host process ${comm} visible`);
    });

    it('the links of /proc lead to nothing of the daemon: /proc/1/cwd is /, /proc/self/fd has only what the job was given', async () => {
      const cwd = await run({ forceGatedFork, cwd: '/proc/1/cwd', script: 'pwd -P; ls /proc/self/fd | tr "\\n" " "' });
      assert.equal(cwd.exit.code, 0, cwd.stderr);
      const [where, fds] = cwd.stdout.split('\n');
      assert.equal(where, '/', 'the daemon\'s working directory stays out of reach');
      assert.deepEqual(fds!.trim().split(' ').map(Number).sort((a, b) => a - b).slice(0, 3), [0, 1, 2]);
    });

    it('hostname is the job\'s; the host keeps its own', async () => {
      const { stdout } = await run({ forceGatedFork, isolation: { ...NAMESPACES, hostname: 'job-7f3a' }, script: 'hostname' });
      assert.equal(stdout, 'job-7f3a\n');
      assert.notEqual(execFileSync('hostname').toString(), 'job-7f3a\n');
    });

    it('IPC: a host message queue is not seen, and the job\'s is not seen on the host', async () => {
      const hostQueues = (): number => execFileSync('ipcs', ['-q']).toString().split('\n').filter((l) => l.startsWith('0x')).length;
      const id = execFileSync('ipcmk', ['-Q']).toString().match(/\d+/)![0];
      try {
        const before = hostQueues();
        const { stdout } = await run({ forceGatedFork, script: 'ipcs -q | grep -c ^0x; ipcmk -Q >/dev/null && ipcs -q | grep -c ^0x' });
        assert.equal(stdout, '0\n1\n');
        assert.equal(hostQueues(), before);
      } finally {
        execFileSync('ipcrm', ['-q', id]);
      }
    });

    it('/proc/self/cgroup shows "/" in every hierarchy; /sys/fs/cgroup is the job\'s cgroup only, read-only, even for root', async () => {
      const cgroup = await jobCgroup();
      const { stdout } = await run({
        forceGatedFork,
        ...cgroup.plan.placement,
        uid: undefined,
        gid: undefined,
        groups: undefined,
        script: [
          'cut -d: -f3 /proc/self/cgroup | sort -u',
          // Every cgroup.procs the job can see lists the job's own processes only.
          // Every cgroup.procs the job can see lists its own processes only (PIDs of its namespace).
          'for f in $(find /sys/fs/cgroup -name cgroup.procs); do cat $f; done | sort -un | tr "\\n" " "; echo',
          'echo $$ > $(find /sys/fs/cgroup -name cgroup.procs | head -1) 2>/dev/null && echo moved || echo not-moved',
          'for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/*/memory.limit_in_bytes /sys/fs/cgroup/*/pids.max; do [ -e $f ] || continue; echo 1 > $f 2>/dev/null && echo "wrote $f" || echo refused; done',
        ].join('; '),
      });
      const [roots, procs, moved, ...writes] = stdout.trim().split('\n');
      assert.equal(roots, '/');
      for (const pid of procs!.trim().split(' ').map(Number)) assert.ok(pid >= 1 && pid < 20, `pid ${pid} is not the job's`);
      assert.equal(moved, 'not-moved');
      assert.ok(writes.length > 0 && writes.every((line) => line === 'refused'), writes.join(', '));
    });

    it('network "none": only lo, and it is up', async () => {
      const { stdout } = await run({ forceGatedFork, isolation: { ...NAMESPACES, network: 'none' }, script: 'ip -o link | cut -d" " -f2,3' });
      assert.match(stdout, /^lo: <LOOPBACK,UP,LOWER_UP>\n$/);
    });
  });

  describe(`isolation, ${pathName}: signals and exit`, requireRoot, () => {
    it('a signal sent to the job reaches every process of it; a trapping command handles it', async () => {
      const { proc, log } = start({
        forceGatedFork,
        script: 'trap "echo got TERM; exit 7" TERM; sleep 100 & child=$!; echo ready; wait; kill -0 $child 2>/dev/null || echo child-gone; exit 9',
      });
      await waitForStdout(proc, log, 'ready');
      assert.equal(proc.kill('SIGTERM'), true);
      const exit = await proc.exited;
      assert.deepEqual([exit.code, exit.signal], [7, null]);
      assert.equal((await readCapturedOutput(log)).stdout.toString(), 'ready\ngot TERM\n');
    });

    it('exit codes and signals are the command\'s, exactly as without isolation', async () => {
      for (const [script, code, signal] of [
        ['exit 0', 0, null],
        ['exit 3', 3, null],
        ['exit 255', 255, null],
        ['kill -TERM $$', null, 'SIGTERM'],
        ['kill -KILL $$', null, 'SIGKILL'],
        ['kill -SEGV $$', null, 'SIGSEGV'],
      ] as const) {
        const { exit } = await run({ forceGatedFork, script });
        assert.deepEqual([exit.code, exit.signal], [code, signal], script);
      }
    });

    it('an untrapped SIGTERM through the handle: signal SIGTERM; SIGKILL: SIGKILL, and the whole namespace is gone', async () => {
      const cgroup = await jobCgroup();
      const term = start({ forceGatedFork, script: 'echo ready; sleep 100', ...cgroup.plan.placement });
      await waitForStdout(term.proc, term.log, 'ready');
      term.proc.kill('SIGTERM');
      assert.equal((await term.proc.exited).signal, 'SIGTERM');

      const kill = start({ forceGatedFork, script: 'sleep 100 & sleep 100 & echo ready; wait', ...cgroup.plan.placement });
      await waitForStdout(kill.proc, kill.log, 'ready');
      kill.proc.kill('SIGKILL');
      assert.equal((await kill.proc.exited).signal, 'SIGKILL');
      await kill.proc.closed;
      assert.equal(await cgroup.waitEmpty(5000), true);
    });

    it('when the command exits, what it left running dies with the namespace', async () => {
      const cgroup = await jobCgroup();
      const { exit } = await run({ forceGatedFork, script: 'setsid sleep 100 & nohup sleep 100 >/dev/null & exit 4', ...cgroup.plan.placement });
      assert.equal(exit.code, 4);
      assert.equal(await cgroup.waitEmpty(5000), true);
    });

    it('an OOM kill is still SIGKILL', async () => {
      const cgroup = await jobCgroup({ memoryBytes: 32 << 20 });
      const { exit } = await run({ forceGatedFork, script: 'exec dd if=/dev/zero of=/dev/null bs=64M count=1', ...cgroup.plan.placement });
      // Whether only dd was killed (v1) or the whole group, init too (v2, memory.oom.group).
      assert.equal(exit.signal, 'SIGKILL');
    });

    it('output stays byte-exact', async () => {
      const { stdout, stderr } = await run({ forceGatedFork, script: 'head -c 300000 /dev/zero | tr "\\0" a; printf "e\\0r" >&2' });
      assert.equal(stdout, 'a'.repeat(300000));
      assert.equal(stderr, 'e\0r');
    });
  });

  describe(`isolation, ${pathName}: a job that never ran is never started`, requireRoot, () => {
    it('exec failures are synchronous SpawnErrors with stage, code and path', () => {
      const notExecutable = path.join(dir, `plain-${seq++}`);
      writeFileSync(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
      const noFormat = path.join(dir, `no-format-${seq++}`);
      writeFileSync(noFormat, 'echo hi\n', { mode: 0o755 });
      const spawn = (command: string, cwd?: string) => () =>
        spawnProcess({ command, env: ENV, ...NOBODY, isolation: NAMESPACES, forceGatedFork, cwd, logPath: path.join(dir, `never-${seq++}.log`) });
      assert.throws(spawn('/nonexistent/tool'), (e: unknown) => e instanceof SpawnError && e.stage === 'exec' && e.code === 'ENOENT' && e.path === '/nonexistent/tool');
      assert.throws(spawn(notExecutable), { stage: 'exec', code: 'EACCES', path: notExecutable });
      assert.throws(spawn(noFormat), { stage: 'exec', code: 'ENOEXEC', path: noFormat });
      assert.throws(spawn('true', '/nonexistent/dir'), { stage: 'chdir', code: 'ENOENT', path: '/nonexistent/dir' });
    });

    it('a cwd the job\'s user cannot enter: chdir, EACCES, naming the directory', () => {
      const locked = path.join(dir, `locked-${seq++}`);
      mkdirSync(locked, { mode: 0o700 });
      assert.throws(
        () => spawnProcess({ command: 'true', env: ENV, ...NOBODY, isolation: NAMESPACES, forceGatedFork, cwd: locked, logPath: path.join(dir, `never-${seq++}.log`) }),
        (e: unknown) => e instanceof SpawnError && e.stage === 'chdir' && e.code === 'EACCES' && e.path === locked && e.kind === 'invalid-argument',
      );
    });

    it('a failed mount step: stage mount, the mount point', () => {
      assert.throws(
        () => spawnProcess({ command: 'true', env: ENV, isolation: { ...NAMESPACES, hide: ['/nonexistent-hidden'] }, forceGatedFork, logPath: path.join(dir, `never-${seq++}.log`) }),
        { stage: 'mount', code: 'ENOENT', path: '/nonexistent-hidden', message: 'spawn failed at mount on /nonexistent-hidden: ENOENT (No such file or directory)' },
      );
    });

    it('nothing is left behind: no zombie, no descriptor', async () => {
      const fds = openFdCount();
      for (let i = 0; i < 5; i++) {
        assert.throws(() => spawnProcess({ command: '/nonexistent', env: ENV, isolation: NAMESPACES, forceGatedFork, logPath: path.join(dir, `never-${seq++}.log`) }));
        await run({ forceGatedFork, script: 'exit 0' });
      }
      assert.deepEqual(zombieChildren(), []);
      assert.equal(openFdCount(), fds);
    });

    it('PID 1 held before it execs init (where a SIGSTOP from the job\'s user would hold it) is killed at the deadline: ETIMEDOUT', () => {
      const fds = openFdCount();
      assert.throws(
        () => spawnProcess({ command: 'true', env: ENV, ...NOBODY, isolation: NAMESPACES, forceGatedFork, startTimeoutMs: 200, holdBeforeExecForTest: true, logPath: path.join(dir, `held-${seq++}.log`) }),
        (error) => error instanceof SpawnError && error.stage === 'clone' && error.code === 'ETIMEDOUT',
      );
      assert.deepEqual(zombieChildren(), []);
      assert.equal(openFdCount(), fds);
    });
  });

  describe(`isolation, ${pathName}: the mount namespace`, requireRoot, () => {
    it('a private /tmp, /var/tmp and /dev/shm: empty, writable, and two jobs never see each other\'s files', async () => {
      writeFileSync(path.join(dir, 'host-file'), 'host');
      const isolation = { ...NAMESPACES, privateTmp: true };
      const first = start({ forceGatedFork, isolation, script: 'for d in /tmp /var/tmp /dev/shm; do ls -A $d | wc -l; touch $d/mine-a; done; echo ready; sleep 100' });
      await waitForStdout(first.proc, first.log, 'ready');
      const second = await run({ forceGatedFork, isolation, script: 'ls -A /tmp /var/tmp /dev/shm; touch /tmp/mine-b && echo wrote' });
      first.proc.kill('SIGKILL');
      await first.proc.exited;
      assert.equal((await readCapturedOutput(first.log)).stdout.toString(), '0\n0\n0\nready\n');
      assert.equal(second.stdout, '/dev/shm:\n\n/tmp:\n\n/var/tmp:\nwrote\n');
      for (const d of ['/tmp', '/var/tmp', '/dev/shm']) {
        assert.equal(existsSync(path.join(d, 'mine-a')), false);
        assert.equal(existsSync(path.join(d, 'mine-b')), false);
      }
    });

    it('hidden directories are empty and unreadable; root sees them empty', async () => {
      const secret = hostDir('secret');
      writeFileSync(path.join(secret, 'key.pem'), 'private');
      const isolation = { ...NAMESPACES, hide: [secret] };
      const user = await run({ forceGatedFork, isolation, script: `ls ${secret}; cat ${secret}/key.pem; touch ${secret}/x` });
      assert.match(user.stderr, /Permission denied/);
      assert.doesNotMatch(user.stdout + user.stderr, /private/);
      const root = await run({ forceGatedFork, isolation, uid: undefined, gid: undefined, groups: undefined, script: `ls -A ${secret} | wc -l; cat ${secret}/key.pem` });
      assert.equal(root.stdout, '0\n');
      assert.equal(readFileSync(path.join(secret, 'key.pem'), 'utf8'), 'private');
    });

    it('a read-only root refuses writes; writable paths and the private /tmp accept them', async () => {
      const scratch = hostDir('scratch');
      chmodSync(scratch, 0o777);
      const elsewhere = hostDir('elsewhere');
      chmodSync(elsewhere, 0o777);
      const { stdout, stderr } = await run({
        forceGatedFork,
        isolation: { ...NAMESPACES, readOnlyRoot: true, writable: [scratch] },
        script: `touch ${elsewhere}/x || echo refused; echo kept > ${scratch}/out && echo scratch-ok; echo > /dev/null && echo devnull-ok`,
      });
      assert.equal(stdout, 'refused\nscratch-ok\ndevnull-ok\n');
      assert.match(stderr, /Read-only file system/);
      assert.equal(readFileSync(path.join(scratch, 'out'), 'utf8'), 'kept\n');
      assert.equal(existsSync(path.join(elsewhere, 'x')), false);
      // Under a private /tmp, the host's /tmp (where `scratch` is) is out of sight: the private one is
      // writable.
      const tmp = await run({ forceGatedFork, isolation: { ...NAMESPACES, readOnlyRoot: true, privateTmp: true }, script: 'touch /tmp/t /var/tmp/t /dev/shm/t && echo tmp-ok; touch /etc/x 2>/dev/null || echo etc-refused' });
      assert.equal(tmp.stdout, 'tmp-ok\netc-refused\n');
    });

    it('a writable directory inside a hidden one stays reachable at its place; nothing else there is', async () => {
      // The daemon's layout: a scratch root no job may list, and one scratch directory per job.
      const root = hostDir('scratch-root');
      const mine = path.join(root, 'jobs', 'mine');
      const theirs = path.join(root, 'jobs', 'theirs');
      mkdirSync(mine, { recursive: true });
      mkdirSync(theirs, { recursive: true });
      chmodSync(mine, 0o777);
      writeFileSync(path.join(theirs, 'secret'), 'theirs');
      const { stdout, stderr } = await run({
        forceGatedFork,
        isolation: { ...NAMESPACES, readOnlyRoot: true, hide: [root], writable: [mine] },
        cwd: mine,
        script: `pwd; echo out > ./result && echo wrote; ls ${root} || echo root-unlisted; ls ${path.join(root, 'jobs')} || echo jobs-unlisted; cat ${theirs}/secret || echo theirs-unreachable`,
      });
      assert.equal(stdout, `${mine}\nwrote\nroot-unlisted\njobs-unlisted\ntheirs-unreachable\n`);
      assert.match(stderr, /Permission denied/);
      assert.equal(readFileSync(path.join(mine, 'result'), 'utf8'), 'out\n');

      // The other way round would show what is hidden: refused.
      assert.throws(
        () => spawnProcess({ command: 'true', env: ENV, forceGatedFork, isolation: { ...NAMESPACES, hide: [mine], writable: [`${root}/./jobs/..`] }, logPath: path.join(dir, `never-${seq++}.log`) }),
        /isolation\.hide\[0\] .* is inside isolation\.writable\[0\]/,
      );
    });

    it('binds: read-only and read-write, and a source the job\'s user cannot reach is refused', async () => {
      const source = hostDir('bind-source');
      writeFileSync(path.join(source, 'data'), 'from the host');
      chmodSync(source, 0o777);
      const readOnlyTarget = hostDir('bind-ro');
      const writableTarget = hostDir('bind-rw');
      const { stdout, stderr } = await run({
        forceGatedFork,
        isolation: { ...NAMESPACES, binds: [{ source, target: readOnlyTarget, readOnly: true }, { source, target: writableTarget, readOnly: false }] },
        script: `cat ${readOnlyTarget}/data; echo; touch ${readOnlyTarget}/no || echo refused; echo job > ${writableTarget}/from-job && echo wrote`,
      });
      assert.equal(stdout, 'from the host\nrefused\nwrote\n');
      assert.match(stderr, /Read-only file system/);
      assert.equal(readFileSync(path.join(source, 'from-job'), 'utf8'), 'job\n');
      assert.deepEqual(readdirSync(readOnlyTarget), []); // the host's view of the target is untouched

      const locked = path.join(dir, `locked-${seq++}`);
      mkdirSync(path.join(locked, 'inner'), { recursive: true, mode: 0o700 });
      chmodSync(path.join(locked, 'inner'), 0o777); // reachable only through a directory nobody may enter
      assert.throws(
        () => spawnProcess({ command: 'true', env: ENV, forceGatedFork, ...NOBODY, isolation: { ...NAMESPACES, binds: [{ source: path.join(locked, 'inner'), target: writableTarget, readOnly: false }] }, logPath: path.join(dir, `never-${seq++}.log`) }),
        { stage: 'mount', code: 'EACCES', path: path.join(locked, 'inner') },
      );
    });

    it('nothing mounted in the job shows on the host', async () => {
      const before = readFileSync('/proc/self/mountinfo', 'utf8');
      await run({ forceGatedFork, isolation: { ...NAMESPACES, privateTmp: true, readOnlyRoot: true, hide: [hostDir('h')] }, script: 'true' });
      assert.equal(readFileSync('/proc/self/mountinfo', 'utf8'), before);
    });
  });

  describe(`isolation, ${pathName}: privileges`, requireRoot, () => {
    it('a job whose uid is not 0: no_new_privs, no capabilities in any set, the bounding set included', async () => {
      const { stdout } = await run({ forceGatedFork, script: 'grep -E "^(NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):" /proc/self/status' });
      assert.deepEqual(stdout.trim().split('\n').map((l) => l.split(/\s+/)), [
        ['CapInh:', '0000000000000000'],
        ['CapPrm:', '0000000000000000'],
        ['CapEff:', '0000000000000000'],
        ['CapBnd:', '0000000000000000'],
        ['CapAmb:', '0000000000000000'],
        ['NoNewPrivs:', '1'],
      ]);
    });

    it('a root job keeps its capabilities, with no_new_privs', async () => {
      const { stdout } = await run({ forceGatedFork, uid: undefined, gid: undefined, groups: undefined, script: 'grep -E "^(NoNewPrivs|CapBnd):" /proc/self/status' });
      assert.match(stdout, /^CapBnd:\s+0*[1-9a-f][0-9a-f]*\nNoNewPrivs:\s+1\n$/);
    });

    it('a setuid-root binary gives no root', async () => {
      // A setuid copy of id(1) where setuid bits count (not on a nosuid mount): proven by a job
      // without isolation first.
      const bin = hostDir('setuid');
      const id = path.join(bin, 'suid-id');
      copyFileSync('/usr/bin/id', id);
      chmodSync(id, 0o4755);
      const control = await run({ forceGatedFork, isolation: undefined, script: `${id} -u` });
      if (control.stdout !== '0\n') {
        assert.ok(statSync(id).mode & 0o4000);
        return; // a nosuid filesystem: nothing to prove here
      }
      const { stdout } = await run({ forceGatedFork, script: `${id} -u; ${id} -u -r` });
      assert.equal(stdout, '65534\n65534\n');
    });

    it('a daemon without CAP_SETPCAP cannot empty a job\'s bounding set: the spawn fails and says what is missing', () => {
      // A Node process whose bounding set lacks CAP_SETPCAP (setpriv), spawning one isolated job.
      const script = `
        const { spawnProcess } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'native'))});
        try {
          spawnProcess({ command: 'true', logPath: ${JSON.stringify(path.join(dir, `no-setpcap-${forceGatedFork ? 'fork' : 'clone3'}.log`))}, uid: 65534, gid: 65534, groups: [], forceGatedFork: ${forceGatedFork},
            isolation: { pid: true, mount: true, ipc: true, uts: true, cgroup: true, network: 'host' } });
          console.log('spawned');
        } catch (e) { console.log(JSON.stringify({ stage: e.stage, code: e.code, message: e.message })); }`;
      const out = execFileSync('setpriv', ['--bounding-set', '-all,+setuid,+setgid,+kill,+sys_admin', '--', process.execPath, '-e', script]).toString();
      assert.deepEqual(JSON.parse(out), {
        stage: 'credentials',
        code: 'EPERM',
        message: 'spawn failed at credentials: the capability bounding set (emptying it needs CAP_SETPCAP): EPERM (Operation not permitted)',
      });
    });

    // Keyrings are the kernel's, not a namespace's: they outlive a job (a uid's user keyrings stay
    // after its last process) and a process inherits its parent's session keyring.
    const syscalls = KEYCTL_SYSCALLS[process.arch];
    const keyring = syscalls === undefined ? { skip: `no keyctl syscall numbers for ${process.arch}` } : {};

    it('freshUserKeyrings: a uid\'s keys from its previous job are gone; without it they are there', keyring, async () => {
      const { addKey, keyctl } = syscalls!;
      // A uid of its own for this test (each spawn path has one): its user keyring starts empty.
      const user = { uid: 0x6fff_0000 + (process.pid % 0x7000) * 2 + (forceGatedFork ? 1 : 0), groups: [] as number[] };
      const as = { ...user, gid: user.uid };
      const add = await run({ forceGatedFork, ...as, script: `perl -e 'my ($t, $d, $p) = (q(user), q(left-behind), q(secret)); print syscall(${addKey}, $t, $d, $p, 6, -4) > 0 ? "added\\n" : "add: $!\\n"'` });
      assert.equal(add.stdout, 'added\n', add.stderr);
      const find = `perl -e 'my ($t, $d) = (q(user), q(left-behind)); print syscall(${keyctl}, 10, -4, $t, $d, 0) > 0 ? "found\\n" : "absent\\n"'`;
      const next = await run({ forceGatedFork, ...as, script: find });
      assert.equal(next.stdout, 'found\n', 'the kernel keeps a uid\'s user keyring after its job');
      const fresh = await run({ forceGatedFork, ...as, isolation: { ...NAMESPACES, freshUserKeyrings: true }, script: find });
      assert.equal(fresh.stdout, 'absent\n', fresh.stderr);
      // Its own keys it keeps and reads as ever (in its session keyring, its own).
      const own = await run({
        forceGatedFork, ...as, isolation: { ...NAMESPACES, freshUserKeyrings: true },
        script: `perl -e 'my ($t, $d, $p) = (q(user), q(mine), q(value)); my $k = syscall(${addKey}, $t, $d, $p, 5, -3); my $buf = "\\0" x 16; my $n = syscall(${keyctl}, 11, $k, $buf, 16); print substr($buf, 0, $n), "\\n"'`,
      });
      assert.equal(own.stdout, 'value\n', own.stderr);
      // Leave the uid's keyrings empty.
      await run({ forceGatedFork, ...as, isolation: { ...NAMESPACES, freshUserKeyrings: true }, script: 'true' });
    });

    it('a job does not share its spawner\'s session keyring (systemd gives a service one)', keyring, () => {
      const { addKey, keyctl } = syscalls!;
      // A Node process in a session keyring of its own holding a key, spawning one isolated job that
      // looks for that key; its exit status says whether it found it.
      const script = `
        const { spawnProcess } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'native'))});
        const proc = spawnProcess({ command: 'perl', args: ['-e', 'my ($t, $d) = (q(user), q(daemon-key)); exit(syscall(${keyctl}, 10, -3, $t, $d, 0) > 0 ? 1 : 0)'],
          env: ${JSON.stringify(ENV)}, logPath: ${JSON.stringify(path.join(dir, `session-keyring-${forceGatedFork ? 'fork' : 'clone3'}.log`))},
          uid: 65534, gid: 65534, groups: [], forceGatedFork: ${forceGatedFork}, isolation: ${JSON.stringify(NAMESPACES)} });
        proc.exited.then((exit) => console.log(JSON.stringify(exit.code)));`;
      const joinAndAdd = `my ($t, $d, $p) = (q(user), q(daemon-key), q(x)); syscall(${keyctl}, 1, 0) < 0 and die "join: $!"; syscall(${addKey}, $t, $d, $p, 1, -3) < 0 and die "add: $!"; exec @ARGV`;
      const control = execFileSync('perl', ['-e', joinAndAdd, '--', 'perl', '-e', `my ($t, $d) = (q(user), q(daemon-key)); print syscall(${keyctl}, 10, -3, $t, $d, 0) > 0 ? "found" : "absent"`]).toString();
      assert.equal(control, 'found', 'a child process inherits the session keyring');
      const out = execFileSync('perl', ['-e', joinAndAdd, '--', process.execPath, '-e', script]).toString();
      assert.equal(out.trim(), '0', 'the job found its spawner\'s key');
    });

    it('mount(2) is refused', async () => {
      const { stdout } = await run({ forceGatedFork, script: 'mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused' });
      assert.equal(stdout, 'refused\n');
    });

    it('the job inherits only fds 0, 1 and 2; init holds none of them', async () => {
      const { stdout } = await run({ forceGatedFork, script: 'ls /proc/self/fd | sort -n | tr "\\n" " "; echo; ls /proc/1/fd 2>&1 | grep -c denied' });
      // ls holds fd 3 on the directory it lists; /proc/1 (init) is not the job's to read.
      assert.equal(stdout, '0 1 2 3 \n1\n');
    });
  });
}
