// `job-cli completion bash|zsh|fish`: the scripts the real binary prints, loaded into the real
// shells and asked to complete command lines. Every command path (aliases too) and every one of its
// flags, as clipanion's definitions give them, must be offered by each shell.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { commandTable, type CommandClassPaths } from '../../src/cli/command-table';
import { createJobCli, JOB_CLI_COMMANDS } from '../../src/cli/job-cli/main';
import { runCli, show } from '../helpers/cli';

const table = commandTable(createJobCli(), JOB_CLI_COMMANDS as readonly CommandClassPaths[]);
const paths = table.commands.flatMap((command) => [command.path, ...command.aliases].map((words) => ({ words, options: [...command.options.flatMap((option) => option.names), '--help'] })));

let dir: string;

function has(shell: string): boolean {
  try {
    execFileSync(shell, ['-c', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What a shell harness does with each line: load the script, complete the line, print one word per line, then "@@". */
const HARNESS: Record<string, string> = {
  bash: `source "$1"
while IFS= read -r line; do
  read -ra COMP_WORDS <<< "$line"; [[ "$line" == *' ' ]] && COMP_WORDS+=('')
  COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _job_cli
  for word in "\${COMPREPLY[@]}"; do printf '%s\\n' "$word"; done; echo @@
done < "$2"`,
  // zsh's completion system needs a terminal; its two functions the script calls are stood in for.
  zsh: `compdef() { :; }
_describe() { local name=\${@[-1]} item; for item in "\${(@P)name}"; do print -r -- "\${item%%:*}"; done; }
_files() { print -r -- '<files>'; }
source "$1"
while IFS= read -r line; do
  words=(\${(z)line}); [[ "$line" == *' ' ]] && words+=('')
  CURRENT=\${#words}; _job_cli; print @@
done < "$2"`,
  fish: `source $argv[1]
while read -l line
  complete -C "$line" | string replace -r '\\t.*' ''
  echo @@
end < $argv[2]`,
};

/** The words the shell offers for each line (typed up to the cursor). */
function complete(shell: string, script: string, lines: string[]): string[][] {
  const scriptFile = path.join(dir, `completion.${shell}`);
  const linesFile = path.join(dir, `lines-${shell}.txt`);
  const harnessFile = path.join(dir, `harness.${shell}`);
  writeFileSync(scriptFile, script);
  writeFileSync(linesFile, lines.map((line) => `${line}\n`).join(''));
  writeFileSync(harnessFile, HARNESS[shell]!);
  const output = execFileSync(shell, [harnessFile, scriptFile, linesFile], { encoding: 'utf8' });
  const answers = output.split('@@\n').slice(0, -1).map((block) => block.split('\n').filter((word) => word !== ''));
  assert.equal(answers.length, lines.length, output);
  return answers;
}

function sorted(words: Iterable<string>): string[] {
  return [...new Set(words)].sort();
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'jobworker-completion-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('job-cli completion', () => {
  it('the table it is generated from has the commands and flags (the test has teeth)', () => {
    const spelled = paths.map((entry) => entry.words.join(' '));
    for (const command of ['run', 'start', 'wait', 'events', 'ls', 'list', 'context add', 'completion']) assert.ok(spelled.includes(command), command);
    assert.ok(paths.find((entry) => entry.words.join(' ') === 'run')!.options.includes('--rm'));
    assert.ok(paths.find((entry) => entry.words.join(' ') === 'run')!.options.includes('-e'));
  });

  it('an unknown shell is a usage error listing the shells', async () => {
    const result = await runCli(['completion', 'tcsh'], { home: dir });
    assert.equal(result.code, 2, show(result));
    assert.match(result.stderr, /SHELL: expected bash, zsh, fish, got "tcsh"/);
  });

  for (const shell of ['bash', 'zsh', 'fish']) {
    it(`${shell}: completes every command, every flag of each, and leaves the job's command alone`, has(shell) ? {} : { skip: `${shell} is not installed` }, async () => {
      const result = await runCli(['completion', shell], { home: dir });
      assert.equal(result.code, 0, show(result));
      assert.equal(result.stderr, '');

      const lines = [
        'job-cli ',
        'job-cli context ',
        'job-cli wa',
        ...paths.map((entry) => `job-cli ${entry.words.join(' ')} -`),
        'job-cli stop 3f2a9c1e --si',
        'job-cli run --cpu 1 -- ls -',
      ];
      const answers = complete(shell, result.stdout, lines);
      // zsh's _describe filters by the typed prefix itself: the stand-in shows what it was given.
      const typed = (line: string, words: string[]) => (shell === 'zsh' ? words.filter((word) => word.startsWith(line.split(' ').at(-1)!)) : words);

      const firstWords = sorted(paths.map((entry) => entry.words[0]!));
      assert.deepEqual(sorted(answers[0]!), firstWords);
      assert.deepEqual(sorted(answers[1]!), sorted(paths.filter((entry) => entry.words[0] === 'context').map((entry) => entry.words[1]!)));
      assert.deepEqual(typed(lines[2]!, answers[2]!), ['wait']);
      paths.forEach((entry, i) => {
        assert.deepEqual(sorted(answers[3 + i]!), sorted(entry.options), `flags of ${entry.words.join(' ')}`);
      });
      const afterPaths = 3 + paths.length;
      assert.deepEqual(typed(lines[afterPaths]!, answers[afterPaths]!), ['--signal'], 'a command is still found after its JOB argument');
      assert.ok(answers[afterPaths + 1]!.every((word) => !word.startsWith('--')), `after "--" the words are the job's: ${answers[afterPaths + 1]!.join(' ')}`);
    });
  }
});
