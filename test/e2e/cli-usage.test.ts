// job-cli's command line: --help with examples for every command, and bad flags as usage errors
// (exit 2, one line naming the flag) before anything is contacted. No daemon needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { runCli, show, type CliResult } from '../helpers/cli';

let home: string;

function cli(args: string[]): Promise<CliResult> {
  // An address nothing listens on: a usage error must come before any attempt to connect.
  return runCli(args, { home, env: { JOBWORKER_ADDR: 'localhost:1' } });
}

const COMMANDS = [
  ['run'], ['start'], ['stop'], ['query'], ['status'], ['stream'], ['logs'], ['list'], ['top'], ['rm'], ['quota'], ['ui'],
  ['context', 'add'], ['context', 'use'], ['context', 'ls'], ['context', 'rm'], ['context', 'show'],
];

describe('job-cli usage', { concurrency: 8 }, () => {
  before(() => {
    home = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-usage-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  it('--help lists every command; each command has --help with examples', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0, show(top));
    for (const command of COMMANDS) {
      if (command[0] !== 'status' && command[0] !== 'logs') assert.ok(top.stdout.includes(`job-cli ${command.join(' ')}`), `${command.join(' ')} missing from --help`);
      const help = await cli([...command, '--help']);
      assert.equal(help.code, 0, show(help));
      assert.match(help.stdout, /\nExamples\n/, `${command.join(' ')} --help has no examples`);
      assert.match(help.stdout, /\$ job-cli /);
    }
    const group = await cli(['context', '--help']);
    assert.equal(group.code, 0, show(group));
    for (const command of COMMANDS.filter((c) => c[0] === 'context')) assert.match(group.stdout, new RegExp(`^ {2}job-cli ${command.join(' ')} +[A-Z]`, 'm'));
    // bin/job-cli.js answers --version and -v itself, without loading the CLI: exactly as the CLI does.
    const { version: packageVersion } = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    const asTheCliAnswers = spawnSync(process.execPath, ['-e', "require('./dist/src/cli/job-cli/main.js').main(['--version'])"], { cwd: path.join(__dirname, '..', '..', '..'), encoding: 'utf8' });
    assert.equal(asTheCliAnswers.stdout, `${packageVersion}\n`, asTheCliAnswers.stderr);
    for (const flag of ['--version', '-v']) {
      const version = await cli([flag]);
      assert.equal(version.code, 0, show(version));
      assert.equal(version.stdout, `${packageVersion}\n`, flag);
    }
  });

  const usageErrors: [string[], RegExp][] = [
    [['start', '--memory', '12X', '--', 'true'], /^job-cli: --memory: unknown size unit "X"/],
    [['start', '--memory', '256MB', '--', 'true'], /^job-cli: --memory: "MB" is ambiguous: write M or MiB/],
    [['run', '--cpu', 'half', '--', 'true'], /^job-cli: --cpu: expected a number/],
    [['run', '--cpu=0', '--', 'true'], /^job-cli: --cpu: must be positive/],
    [['start', '--cpu-weight', '0', '--', 'true'], /^job-cli: --cpu-weight: must be from 1 to 10000/],
    [['start', '--pids', '1.5', '--', 'true'], /^job-cli: --pids: expected a whole number/],
    [['start', '--io-read-bps', '=1M', '--', 'true'], /^job-cli: --io-read-bps: the device before "=" is empty/],
    [['start', '--io-write-iops', '/dev/sda=fast', '--', 'true'], /^job-cli: --io-write-iops: expected a whole number/],
    [['start', '--io-read-bps', '/dev/sda=1M', '--io-read-bps', '/dev/sda=2M', '--', 'true'], /^job-cli: --io-read-bps: device \/dev\/sda is given twice/],
    [['start', '--env', 'NOT A NAME', '--', 'true'], /^job-cli: --env: expected NAME=VALUE, or NAME/],
    [['start', '--cwd', 'relative/dir', '--', 'true'], /^job-cli: --cwd: must be an absolute path/],
    [['start', '--name', 'two words', '--', 'true'], /^job-cli: --name: must be 1-64 letters, digits, '_', '\.' or '-', starting with a letter or digit, and not a UUID, got "two words"\n/],
    [['run', '--name', '3F2A9C1E-0000-4000-8000-000000000001', '--', 'true'], /^job-cli: --name: must be .*not a UUID/],
    [['start', '--pool', 'batch', '--name', 'nightly', '--', 'true'], /^job-cli: --name: is not supported for pool jobs yet\n/],
    [['start', '--label', '=x', '--', 'true'], /^job-cli: --label: expected KEY=VALUE or KEY, got "=x"\n/],
    [['start', '--label', 'a=1', '--label', 'a=2', '--', 'true'], /^job-cli: --label: a is given twice\n/],
    [['start'], /^job-cli: COMMAND: give the command to run/],
    [['start', 'ls', '-la'], /^job-cli: .*\nhint: put "--" before the job's command/],
    [['start', '--bogus', '--', 'true'], /^job-cli: start: unknown option --bogus\n/],
    [['start', '--memroy', '1G', '--', 'true'], /^job-cli: start: unknown option --memroy; did you mean --memory\?\n/],
    [['list', '--sate', 'running'], /^job-cli: list: unknown option --sate; did you mean --state\?\n/],
    [['strat', '--', 'true'], /^job-cli: unknown command "strat"; did you mean "job-cli start"\?\n/],
    [['context', 'lss'], /^job-cli: unknown command "context lss"; did you mean "job-cli context ls"\?\n/],
    [['start', '--cpu', '-1', '--', 'true'], /^job-cli: --cpu: must be positive \(more than 0\), got -1\n/],
    [['start', '--pids', '-5', '--', 'true'], /^job-cli: --pids: must be from 1 to \d+, got -5\n/],
    [['start', '--memory', '-5M', '--', 'true'], /^job-cli: --memory: must not be negative, got "-5M"\n/],
    [['stop', '--grace', '-1s', '00000000-0000-4000-8000-000000000000'], /^job-cli: --grace: must not be negative, got "-1s"\n/],
    [['context'], /^job-cli context needs one of these commands\n\n {2}job-cli context add +Save/],
    [['stop', '--grace', '10', '00000000-0000-4000-8000-000000000000'], /^job-cli: --grace: .*add a unit/],
    [['stop', '--grace', '2h', '00000000-0000-4000-8000-000000000000'], /^job-cli: --grace: must be at most 1h/],
    [['stop', '--signal', 'NOPE', '00000000-0000-4000-8000-000000000000'], /^job-cli: --signal: unknown signal "NOPE"/],
    [['stop'], /^job-cli: /],
    [['stream', '--tail', 'abc', '00000000-0000-4000-8000-000000000000'], /^job-cli: --tail: expected a whole number/],
    [['stream', '--since', 'yesterday', '00000000-0000-4000-8000-000000000000'], /^job-cli: --since: expected a duration like 10m or an RFC 3339 time/],
    [['list', '--state', 'sleeping'], /^job-cli: --state: unknown state "sleeping"/],
    [['list', '--all', '--state', 'running'], /^job-cli: --all: .*cannot be combined with --state/],
    [['top', '--interval', '10ms'], /^job-cli: --interval: must be at least 100ms/],
    [['list', '--timeout', 'soon'], /^job-cli: --timeout: expected a duration/],
    [['list', '--addr', 'localhost:99999'], /^job-cli: --addr: the port must be from 1 to 65535/],
    [['list', '--addr', '::1'], /^job-cli: --addr: an IPv6 address needs brackets/],
    [['query', '--context', 'a', '--context', 'b', '00000000-0000-4000-8000-000000000000'], /^job-cli: --context: give one context/],
    [['query', '--context', 'nowhere', '00000000-0000-4000-8000-000000000000'], /^job-cli: --context: no context named "nowhere"/],
    [['ui', '--listen', '0.0.0.0:0'], /^job-cli: --listen: 0\.0\.0\.0 is not a loopback address; add --allow-remote/],
    [['ui', '--listen', 'example.com:8080'], /^job-cli: --listen: "example\.com" is not an IP address/],
    [['ui', '--listen', '127.0.0.1:99999'], /^job-cli: --listen: the port must be from 0 to 65535/],
    [['ui', '--context', 'a', '--context', 'b', '--addr', 'localhost:1'], /^job-cli: --addr: cannot be combined with several contexts/],
    [['frobnicate'], /^job-cli: unknown command "frobnicate"\n/],
  ];

  for (const [args, message] of usageErrors) {
    it(`exit 2: job-cli ${args.join(' ')}`, async () => {
      const result = await cli(args);
      assert.equal(result.code, 2, show(result));
      assert.match(result.stderr, message, show(result));
      assert.equal(result.stdout, '');
    });
  }
});
