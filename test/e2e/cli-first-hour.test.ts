// What a new user meets in the first hour, through the real binaries: a dev daemon that answers on
// every address its certificate names, errors that say what is wrong in the user's terms (sizes,
// flags, disks, ports, certificate bundles), and a daemon that says which setting moves a port.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CliProcess, runCli, show, type CliResult } from '../helpers/cli';
import { cgroupRootName, leftoverCgroups, startDevDaemon, type RunningTestDaemon } from '../helpers/cli-daemon';
import { requireRoot } from '../helpers/root';
import { WORKER_BIN } from '../helpers/spawned-daemon';

let home: string;
let daemon: RunningTestDaemon;
let metricsPort: number;

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(args, { home, env: { JOBWORKER_ADDR: daemon.address, ...env } });
}

function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as { port: number }).port)));
}

/** `job-worker ARGS…` (dev mode, HOME in the test's home) to its exit, or until the test kills it. */
function worker(args: string[]): CliProcess {
  return new CliProcess(process.execPath, [WORKER_BIN, '--dev', '--log-format', 'json', '--state-dir', mkdtempSync(path.join(home, 'state-')), ...args], { home, timeoutMs: 60_000 });
}

describe('the first hour', requireRoot, () => {
  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-first-hour-'));
    daemon = await startDevDaemon('first-hour', home, '127.0.0.1:0', '127.0.0.1:0');
    const serving = await daemon.daemon.waitFor((line) => line.msg === 'serving');
    metricsPort = Number(String(serving.metrics).split(':').pop());
  });
  after(async () => {
    await daemon?.stop();
    rmSync(home, { recursive: true, force: true });
    if (daemon !== undefined) assert.deepEqual(leftoverCgroups(daemon.cgroupRootName), []);
  });

  it('the dev daemon answers on 127.0.0.1, ::1 and localhost, every address its certificate names', async () => {
    for (const address of [`127.0.0.1:${daemon.port}`, `[::1]:${daemon.port}`, `localhost:${daemon.port}`]) {
      const result = await cli(['list'], { JOBWORKER_ADDR: address });
      assert.equal(result.code, 0, `${address}: ${show(result)}`);
    }
  });

  it('sizes in refusals read as sizes, and name the flags, not the API fields', async () => {
    const low = await cli(['start', '--memory', '100', '--', 'true']);
    assert.equal(low.code, 2, show(low));
    assert.equal(low.stderr, 'job-cli: --memory: must be at least 1 MiB (1048576 bytes), got 100 bytes\n');
    const high = await cli(['start', '--memory', '64M', '--memory-high', '128M', '--', 'true']);
    assert.equal(high.code, 2, show(high));
    assert.equal(high.stderr, 'job-cli: --memory-high: must not exceed the hard limit --memory (64 MiB (67108864 bytes)), got 128 MiB (134217728 bytes)\n');
    const io = await cli(['start', '--io-read-bps', '/=1K', '--', 'true']);
    assert.equal(io.code, 2, show(io));
    assert.equal(io.stderr, 'job-cli: --io-read-bps: must be at least 4 KiB/s (4096 bytes/s), got 1 KiB/s (1024 bytes/s)\n');
    for (const result of [low, high, io]) assert.doesNotMatch(result.stderr, /limits\.|Bytes|_bytes/);
  });

  it('a disk that is not there: the refusal lists the host\'s disks', async () => {
    const result = await cli(['start', '--io-read-bps', '/dev/sdzz=10M', '--', 'true']);
    assert.equal(result.code, 2, show(result));
    assert.match(result.stderr, /^job-cli: the device of an --io-\* flag: \/dev\/sdzz does not exist; this host('s disks: \/dev\/\w+ \(\d+:\d+\)| has no physical disk)/);
  });

  it('the --io-* examples of `start --help` work here, whatever this host calls its disks', async () => {
    const help = await cli(['start', '--help']);
    const examples = help.stdout.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('$ job-cli start ') && line.includes('--io-'));
    assert.ok(examples.length >= 2, help.stdout);
    for (const example of examples) {
      // The example's own flags, with a job that does nothing instead of its command.
      const words = example.replace(/^\$ job-cli start /, '').split(' -- ')[0]!.split(' ');
      const result = await cli(['run', ...words, '--', 'true']);
      assert.equal(result.code, 0, `${example}\n${show(result)}`);
    }
  });

  it('two spellings of one disk: different rates are one limit; the same rate twice is refused, readably', async () => {
    // The disk behind /, as MAJ:MIN (glibc's split of st_dev).
    const dev = statSync('/', { bigint: true }).dev;
    const device = `${Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn & 0xffffffffn))}:${Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xffffffffn))}`;
    const both = await cli(['run', '--io-read-bps', '/=10M', '--io-write-bps', `${device}=5M`, '--', 'true']);
    assert.equal(both.code, 0, show(both));
    const twice = await cli(['start', '--io-read-bps', '/=10M', '--io-read-bps', `${device}=5M`, '--', 'true']);
    assert.equal(twice.code, 2, show(twice));
    assert.match(twice.stderr, new RegExp(`^job-cli: --io-read-bps: ${device} is disk \\w+ \\(${device}\\), which has this rate already \\(from /\\); give each rate once per disk\\n$`));
  });

  it('dialling the metrics port (plain HTTP) says the server does not speak TLS', async () => {
    const result = await cli(['list'], { JOBWORKER_ADDR: `localhost:${metricsPort}` });
    assert.equal(result.code, 1, show(result));
    assert.match(result.stderr, /^job-cli: cannot connect to the daemon at localhost:\d+: the server there does not speak TLS .*\nhint: check the port .*metrics port \(default 9464\) is plain HTTP\n$/);
  });

  it('a system CA bundle given as --ca: one short line, not every subject', { skip: existsSync('/etc/ssl/certs/ca-certificates.crt') ? false : 'no system CA bundle' }, async () => {
    const result = await cli(['list', '--ca', '/etc/ssl/certs/ca-certificates.crt']);
    assert.equal(result.code, 1, show(result));
    assert.match(result.stderr, /^job-cli: client certificate \S+: is not signed by any of the \d+ CA certificates in \/etc\/ssl\/certs\/ca-certificates\.crt \(certificate issuer: CN=jobworker dev CA; CAs there: "[^"]+", "[^"]+" and \d+ more; a system bundle\? It needs the CA that issued the certificate\)\n$/);
    assert.ok(result.stderr.length < 600, `${result.stderr.length} characters`);
  });

  it('a port in use: the daemon says which flag, variable or key moves it; --metrics-listen off turns metrics off', async () => {
    const taken = await worker(['--listen', `127.0.0.1:${daemon.port}`, '--metrics-listen', 'off', '--config', configWith(cgroupRootName('first-hour-busy'))]).result;
    assert.equal(taken.code, 1, show(taken));
    assert.match(taken.stderr, new RegExp(`^job-worker: cannot listen on 127\\.0\\.0\\.1:${daemon.port}: .*EADDRINUSE.*; the port is taken \\(another job-worker --dev \\(\`npm start\`\\), or another program\\); choose the address with --listen HOST:PORT, JOBWORKER_LISTEN or "listen" in the config file$`, 'm'));

    const blocker = createServer();
    const port = await listen(blocker);
    try {
      const metrics = await worker(['--listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${port}`, '--config', configWith(cgroupRootName('first-hour-metrics'))]).result;
      assert.equal(metrics.code, 1, show(metrics));
      assert.match(metrics.stderr, new RegExp(`^job-worker: cannot listen on 127\\.0\\.0\\.1:${port} for metrics: .*EADDRINUSE.*; the port is taken; choose the address with --metrics-listen HOST:PORT, JOBWORKER_METRICS_LISTEN or "metricsListen" in the config file, or turn metrics off with --metrics-listen off$`, 'm'));
    } finally {
      blocker.close();
    }

    const off = await startDevDaemon('first-hour-off', mkdtempSync(path.join(home, 'off-')), '127.0.0.1:0', 'off');
    try {
      const serving = await off.daemon.waitFor((line) => line.msg === 'serving');
      assert.equal(serving.metrics, null);
    } finally {
      await off.stop();
    }
  });
});

/** A config file that gives the daemon a cgroup root of its own. */
function configWith(name: string): string {
  const file = path.join(home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ cgroupRootName: name }));
  return file;
}
