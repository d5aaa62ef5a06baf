// The escape suite (issue #13, "Proof"): writers' jobs, started through the real daemon over mutual
// TLS with the default configuration, try what a hostile but authorized writer would. Each attempt
// must fail, and the same action on the job's own things must succeed. The daemon's state, config
// and keys live outside /tmp here, so that hiding them (not just the private /tmp) is what is tested.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { JobworkerClient, type JobView, type StartJobRequest } from '../../src/client';
import { mkdtempVisibleToJobs } from '../helpers/job-visible-dir';
import { createTestPki, type TestPki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startDaemonProcess, type SpawnedDaemon } from '../helpers/spawned-daemon';
import { sharedCgroupRoot } from '../helpers/worker';

let pki: TestPki;
let base: string;
let stateDir: string;
let tlsDir: string;
let daemon: SpawnedDaemon;
let alice: JobworkerClient;
let bob: JobworkerClient;
let setuidId: string;
let shared: ReturnType<typeof sharedCgroupRoot> | undefined;

/** Each attempt prints "ESCAPED <what>" if it worked and "denied <what>" otherwise. */
const TRY = 'try() { what="$1"; shift; if "$@" >/dev/null 2>&1; then echo "ESCAPED $what"; else echo "denied $what"; fi; }';

async function finished(client: JobworkerClient, jobId: string): Promise<{ stdout: Buffer; job: JobView }> {
  const out: Buffer[] = [];
  let job: JobView | null = null;
  for await (const message of client.streamLogs({ jobId, follow: true })) {
    for (const chunk of message.chunks) if (chunk.stream === 'stdout') out.push(Buffer.from(chunk.data));
    if (message.finalStatus !== null) job = message.finalStatus;
  }
  return { stdout: Buffer.concat(out), job: job ?? (await client.getJob(jobId)) };
}

async function run(client: JobworkerClient, script: string, extra: Partial<StartJobRequest> = {}): Promise<{ stdout: string; job: JobView }> {
  const started = await client.startJob({ command: 'sh', args: ['-c', `${TRY}\n${script}`], ...extra });
  const { stdout, job } = await finished(client, started.id);
  return { stdout: stdout.toString(), job };
}

function lines(stdout: string, prefix: string): string[] {
  return stdout.split('\n').filter((line) => line.startsWith(prefix));
}

function processesOfUid(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(status)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('escape attempts of writers\' jobs through the daemon (default isolation)', requireRoot, () => {
  before(async () => {
    pki = await createTestPki();
    // Not under /tmp: a job has a private one; these must be unreachable because they are hidden.
    base = mkdtempVisibleToJobs('escape');
    stateDir = path.join(base, 'state');
    tlsDir = path.join(base, 'tls');
    mkdirSync(tlsDir, { mode: 0o755 });
    const issued = await pki.server();
    const tls = { caPath: path.join(tlsDir, 'ca.pem'), certificatePath: path.join(tlsDir, 'server.pem'), privateKeyPath: path.join(tlsDir, 'server-key.pem') };
    copyFileSync(issued.caPath, tls.caPath);
    copyFileSync(issued.certificatePath, tls.certificatePath);
    copyFileSync(issued.privateKeyPath, tls.privateKeyPath);
    chmodSync(tls.caPath, 0o644);
    chmodSync(tls.certificatePath, 0o644);
    chmodSync(tls.privateKeyPath, 0o644); // readable by anyone on the host: only the hiding keeps it from jobs
    // A setuid-root binary a job can reach: no_new_privs must keep it from raising anything.
    mkdirSync(path.join(base, 'bin'), { mode: 0o755 });
    setuidId = path.join(base, 'bin', 'id');
    copyFileSync('/usr/bin/id', setuidId);
    chmodSync(setuidId, 0o4755);
    // On pure v2 with this process alone in its cgroup (the VM's delegated layout), the daemon needs a
    // root beside this process, not beneath the cgroup it shares with it.
    shared = sharedCgroupRoot(`jobworker-test-${process.pid}-escape`);
    daemon = startDaemonProcess({
      stateDir,
      tls,
      cgroupRootName: `jobworker-test-${process.pid}-escape`,
      configDir: base,
      ...('root' in shared.cgroup && shared.cgroup.root !== undefined ? { cgroupRoot: shared.cgroup.root } : {}),
    });
    const port = await daemon.port();
    alice = await JobworkerClient.connect({ address: `localhost:${port}`, tls: await pki.client({ name: 'alice', roles: ['writer'] }) });
    bob = await JobworkerClient.connect({ address: `localhost:${port}`, tls: await pki.client({ name: 'bob', roles: ['writer'] }) });
  });

  after(async () => {
    alice?.close();
    bob?.close();
    try {
      if (daemon !== undefined) {
        const exit = await daemon.stop('SIGTERM');
        assert.equal(exit.code, 0, daemon.stderrText);
      }
    } finally {
      shared?.cleanup();
      pki?.remove();
      if (base !== undefined) rmSync(base, { recursive: true, force: true });
    }
  });

  it('a job reads nothing of the daemon: journal, logs, keys, config; its own scratch directory it may write', async () => {
    const victim = await run(alice, 'echo alice-output');
    const logFile = readdirSync(stateDir, { recursive: true }).map(String).find((name) => name.includes(victim.job.id));
    assert.ok(logFile !== undefined, 'the victim\'s log is in the state directory');
    const { stdout, job } = await run(bob, [
      `try "list the state directory" sh -c 'ls -A ${stateDir} | grep -q .'`,
      `try "read the victim's log" cat ${path.join(stateDir, logFile)}`,
      `try "read the journal" sh -c 'cat ${stateDir}/* | grep -q alice'`,
      `try "read the server key" cat ${path.join(tlsDir, 'server-key.pem')}`,
      `try "read the config" sh -c 'cat ${base}/daemon-*.json'`,
      `try "write the state directory" touch ${stateDir}/planted`,
      `try "write outside its scratch directory" touch ${base}/planted`,
      'echo mine > own-file && [ "$(cat own-file)" = mine ] && echo "own scratch ok $(pwd)"',
    ].join('\n'));
    assert.deepEqual(lines(stdout, 'ESCAPED'), [], stdout);
    assert.equal(lines(stdout, 'denied').length, 7, stdout);
    assert.match(stdout, /^own scratch ok \/.+$/m);
    assert.equal(job.outcome.exitCode, 0);
    assert.equal(job.user?.kind, 'dynamic');
    assert.ok(job.user !== null && job.user.uid >= 1000 && job.user.uid !== 65534, `a dynamic uid: ${JSON.stringify(job.user)}`);
    assert.deepEqual([...job.isolation.namespaces].sort(), ['cgroup', 'ipc', 'mount', 'pid', 'uts']);
    assert.equal(job.isolation.readOnlyRoot, true);
  });

  it('a job cannot see, read the environment of, signal or trace another identity\'s job or the daemon, nor list host processes', async () => {
    const victim = await alice.startJob({ command: 'sleep', args: ['300'], env: { SECRET: 'alice-secret' } });
    try {
      const hostPid = victim.pid!;
      const { stdout } = await run(bob, [
        `try "read the victim's environ" grep -q alice-secret /proc/${hostPid}/environ`,
        `try "signal the victim" kill -0 ${hostPid}`,
        `try "signal the daemon" kill -0 ${daemon.child.pid}`,
        `try "see the daemon" test -e /proc/${daemon.child.pid}/cmdline`,
        `try "list host processes" sh -c '[ $(ls /proc | grep -c "^[0-9]") -gt 6 ]'`,
        // ptrace: a process of its own is its only possible tracee; the victim is not in its namespace.
        `try "attach to the victim's memory" head -c1 /proc/${hostPid}/mem`,
        'grep -q OWN=1 /proc/self/environ && echo "own environ ok"',
        'sleep 100 & kill $! && wait $!; [ $? -eq 143 ] && echo "own signal ok"',
      ].join('\n'), { env: { OWN: '1' } });
      assert.deepEqual(lines(stdout, 'ESCAPED'), [], stdout);
      assert.equal(lines(stdout, 'denied').length, 6, stdout);
      assert.match(stdout, /^own environ ok$/m);
      assert.match(stdout, /^own signal ok$/m);
      assert.equal((await alice.getJob(victim.id)).state, 'running', 'the victim still runs');
    } finally {
      await alice.stopJob(victim.id, { graceMs: 0 });
    }
  });

  it('a job cannot raise its limits, move to another cgroup or mount anything; a setuid binary raises nothing', async () => {
    const { stdout, job } = await run(bob, [
      // Every control file it can see, in every hierarchy (v1 and v2 names alike): its own limits,
      // cgroup.procs (moving itself), the parents' (the view is its own cgroups only).
      'for f in $(find /sys/fs/cgroup -name memory.max -o -name pids.max -o -name cpu.max -o -name memory.limit_in_bytes -o -name pids.max -o -name cpu.cfs_quota_us -o -name cgroup.procs -o -name tasks 2>/dev/null); do try "write $f" sh -c "echo $$ > $f"; done',
      'echo "cgroup files tried: $(find /sys/fs/cgroup -name cgroup.procs -o -name memory.max -o -name memory.limit_in_bytes 2>/dev/null | wc -l)"',
      'try "mount a tmpfs" mount -t tmpfs none /mnt',
      'try "mount cgroup2" mount -t cgroup2 none /mnt',
      'try "remount the root writable" mount -o remount,rw /',
      `try "become root through a setuid binary" sh -c '[ "$(${setuidId} -u)" = 0 ]'`,
      'echo "cgroup as it sees it: $(cat /proc/self/cgroup | head -1)"',
    ].join('\n'), { limits: { memoryBytes: 64 * 1024 * 1024, pids: 64 } });
    assert.deepEqual(lines(stdout, 'ESCAPED'), [], stdout);
    assert.match(stdout, /^cgroup files tried: [1-9]\d*$/m, stdout);
    assert.ok(lines(stdout, 'denied').length >= 5, stdout);
    assert.match(stdout, /^cgroup as it sees it: \d+:[^:]*:\/$/m, stdout);
    assert.equal(job.limits.memoryBytes, 64 * 1024 * 1024);
  });

  it('a job cannot fill another job\'s /tmp: each has its own', async () => {
    const victim = await alice.startJob({ command: 'sh', args: ['-c', 'echo victim > /tmp/victim-file; echo ready; sleep 300'] });
    try {
      const { stdout } = await run(bob, [
        'try "see the victim\'s /tmp" test -e /tmp/victim-file',
        'try "see anything in /tmp" sh -c \'[ -n "$(ls -A /tmp)" ]\'',
        'head -c 1048576 /dev/zero > /tmp/mine && [ $(wc -c < /tmp/mine) = 1048576 ] && echo "own tmp ok"',
      ].join('\n'));
      assert.deepEqual(lines(stdout, 'ESCAPED'), [], stdout);
      assert.match(stdout, /^own tmp ok$/m);
      const check = await run(alice, 'try "see bob\'s file" test -e /tmp/mine');
      assert.deepEqual(lines(check.stdout, 'ESCAPED'), [], check.stdout);
    } finally {
      await alice.stopJob(victim.id, { graceMs: 0 });
    }
  });

  it('stop reaches the job itself (not only its PID 1), and nothing it started survives it: not a setsid child, not a double fork', async () => {
    const started = await bob.startJob({
      command: 'sh',
      args: [
        '-c',
        [
          'trap \'echo "TERM reached the job"; exit 7\' TERM',
          'setsid sh -c "exec sleep 301" </dev/null >/dev/null 2>&1 &',
          '( sleep 302 </dev/null >/dev/null 2>&1 & )',
          'echo ready',
          'while :; do sleep 0.05; done',
        ].join('\n'),
      ],
    });
    const out: string[] = [];
    let job: JobView | null = null;
    let stopped = false;
    for await (const message of bob.streamLogs({ jobId: started.id, follow: true })) {
      for (const chunk of message.chunks) if (chunk.stream === 'stdout') out.push(Buffer.from(chunk.data).toString());
      if (!stopped && out.join('').includes('ready\n')) {
        stopped = true;
        await bob.stopJob(started.id, { signal: 'SIGTERM', graceMs: 5000 });
      }
      if (message.finalStatus !== null) job = message.finalStatus;
    }
    assert.ok(job !== null, 'the stream ends with the final status');
    assert.match(out.join(''), /^TERM reached the job$/m, out.join(''));
    assert.equal(job.state, 'stopped');
    assert.equal(job.outcome.exitCode, 7, JSON.stringify(job.outcome));
    assert.deepEqual(processesOfUid(job.user!.uid), [], 'nothing of the job runs after its stop');
  });

  it('a job out of memory while it is being started kills the job, never the daemon whose memory the spawn shares until exec', async () => {
    // 1 MiB of memory and ~1 MiB of arguments: copying them for the exec goes over the limit while
    // the spawn's processes still share the daemon's memory (clone with CLONE_VM, up to init's exec).
    // On pure v2 a group OOM kill (memory.oom.group) reaching one of them killed the daemon too.
    const big = 'a'.repeat(120_000);
    for (let i = 0; i < 8; i++) {
      let id: string;
      try {
        id = (await bob.startJob({ command: '/bin/true', args: Array.from({ length: 8 }, () => big), limits: { memoryBytes: 1024 * 1024 } })).id;
      } catch (error) {
        // Refused at its exec (ENOMEM) is an answer too, naming the limit; the daemon must still be there to give it.
        // (A failed charge while the arguments are copied is E2BIG.)
        assert.match(
          String(error),
          /limits\.memory_bytes: 1 MiB \(1048576 bytes\) is too little to start \/bin\/true: (its|the exec of the job's init \(its PID 1\)) (exec )?ran out of memory|args: the exec of (\/bin\/true|the job's init \(its PID 1, which starts \/bin\/true\)) could not copy (its|the) arguments,? (and )?(the )?environment.* \(E2BIG\): they do not fit in limits\.memory_bytes, 1 MiB/,
          String(error),
        );
        assert.equal((error as { code?: unknown }).code, 3, 'INVALID_ARGUMENT');
        continue;
      }
      const { job } = await finished(bob, id);
      assert.ok(job.outcome.oomKilled || job.outcome.exitCode === 0, JSON.stringify(job.outcome));
    }
    assert.equal(daemon.child.exitCode, null, daemon.stderrText);
    assert.equal(daemon.child.signalCode, null, daemon.stderrText);
    assert.equal((await run(alice, 'echo still-here')).stdout, 'still-here\n');
  });

  it('exit codes, OOM and output are unchanged; the scratch directory and the dynamic uid are gone after the end', async () => {
    const exited = await run(bob, 'exit 42');
    assert.equal(exited.job.outcome.exitCode, 42);
    const oom = await run(bob, 'x=a; while :; do x="$x$x"; done', { limits: { memoryBytes: 32 * 1024 * 1024 } });
    assert.equal(oom.job.outcome.oomKilled, true, JSON.stringify(oom.job.outcome));
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const octal = [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    const started = await bob.startJob({ command: 'printf', args: [octal] });
    const output = await finished(bob, started.id);
    assert.deepEqual(output.stdout, bytes);
    const uid = output.job.user!.uid;
    assert.equal(output.job.user!.kind, 'dynamic');
    assert.deepEqual(processesOfUid(uid), []);
    assert.deepEqual(readdirSync(`${stateDir}-scratch`).filter((name) => name === started.id), [], 'its scratch directory is removed');
  });
});
