// job-cli's start-up loads only what a command uses (issue 17): commands that do not connect never
// load gRPC, the generated code or the certificate parser, and a connecting command does not load
// the certificate parser for good files. Checked on the real binary: the modules Node loaded, as a
// preloaded script sees them at exit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { commandsNamedBy } from '../../src/cli/command-table';
import { JOB_CLI_COMMANDS } from '../../src/cli/job-cli/main';
import { CLI_BIN, cliEnvironment, REPO_ROOT } from '../helpers/cli';

const HEAVY = [/node_modules\/@grpc\//, /node_modules\/@peculiar\//, /node_modules\/@bufbuild\//, /dist\/src\/gen\//];
/**
 * The CLI from its modules rather than the build's bundle (./cli-bundle.test.ts), where Node's record
 * of loaded modules shows which of them a command ran. The bundle runs the same modules, each when
 * first required, so what is lazy here is lazy there.
 */
const MODULES_ENTRY = 'cli-from-modules.js';

let dir: string;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-cli-startup-'));
  writeFileSync(
    path.join(dir, 'record-modules.js'),
    `process.on('exit', () => require('node:fs').writeFileSync(process.env.MODULES_OUT, Object.keys(require.cache).join('\\n')));\n`,
  );
  writeFileSync(path.join(dir, MODULES_ENTRY), `require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'src', 'cli', 'job-cli', 'main.js'))}).main(process.argv.slice(2));\n`);
});

after(() => rmSync(dir, { recursive: true, force: true }));

function modulesLoadedBy(args: string[], entry = path.join(dir, MODULES_ENTRY)): string[] {
  const out = path.join(dir, `modules-${args.join('-')}.txt`);
  const result = spawnSync(process.execPath, ['--require', path.join(dir, 'record-modules.js'), entry, ...args], {
    env: { ...cliEnvironment(dir), MODULES_OUT: out },
    encoding: 'utf8',
  });
  assert.ok(result.status !== null, `job-cli ${args.join(' ')} ran: ${result.stderr}`);
  return readFileSync(out, 'utf8').split('\n');
}

describe('job-cli start-up', () => {
  it('`job-cli --version` and `-v` load nothing but the launcher and package.json', () => {
    for (const flag of ['--version', '-v']) {
      const loaded = modulesLoadedBy([flag], CLI_BIN).filter((file) => file !== '' && !file.endsWith('record-modules.js'));
      assert.deepEqual(loaded.map((file) => path.basename(file)).sort(), ['job-cli.js', 'package.json'], flag);
    }
  });

  for (const args of [['--help'], ['query', '--help'], ['start', '--no-such-flag'], ['completion', 'bash']]) {
    it(`\`job-cli ${args.join(' ')}\` loads no gRPC, generated code or certificate parser`, () => {
      const loaded = modulesLoadedBy(args);
      assert.ok(loaded.some((file) => file.endsWith(path.join('job-cli', 'main.js'))), 'the record has teeth: it lists the CLI itself');
      assert.deepEqual(loaded.filter((file) => HEAVY.some((pattern) => pattern.test(file))), []);
    });
  }

  it('a connecting command loads gRPC (the record sees lazily loaded modules)', () => {
    // Nothing listens on port 1: the command fails after it loaded the connection code.
    const loaded = modulesLoadedBy(['query', '--addr', 'localhost:1', '--timeout', '1s', '00000000-0000-4000-8000-000000000000']);
    assert.ok(loaded.some((file) => /node_modules\/@grpc\/grpc-js\//.test(file)));
  });
});

describe('commands registered for a command line', () => {
  const named = (args: string[]) => commandsNamedBy(JOB_CLI_COMMANDS, args).map((command) => command.paths![0]!.join(' '));

  it('only the command its first word names, by path or alias', () => {
    assert.deepEqual(named(['query', '00000000-0000-4000-8000-000000000000']), ['query']);
    assert.deepEqual(named(['ls', '--state', 'running']), ['list']);
  });

  it('every command of a group', () => {
    assert.deepEqual(named(['context', 'lss']), ['context add', 'context use', 'context ls', 'context rm', 'context show']);
  });

  it('all of them for an unknown word or an option first (did-you-mean and --help need them all)', () => {
    for (const args of [['qeury', 'x'], ['--help'], []]) assert.equal(named(args).length, JOB_CLI_COMMANDS.length, args.join(' '));
  });
});
