// The commands and options of a clipanion CLI as plain data, read from the CLI's own definitions
// (`cli.definitions()`), never listed by hand: what did-you-mean, `pki --help` for a group of
// commands, negative numbers as option values and shell completion all work from. A command added
// or an option renamed shows up in all of them with no other change.
import type { Cli, BaseContext } from 'clipanion';

export interface OptionEntry {
  /** Every spelling: ["-e", "--env"]. */
  names: string[];
  /** Takes a value (`--cpu 0.5`), rather than being a switch (`--json`). */
  takesValue: boolean;
  description: string;
}

export interface CommandEntry {
  /** The words after the binary's name: ["context", "add"]; [] for a default command. */
  path: string[];
  /** Other spellings of the path (`ls` for `list`), from the command classes' `paths`; [] if none known. */
  aliases: string[][];
  description: string;
  options: OptionEntry[];
}

export interface CommandTable {
  binaryName: string;
  commands: CommandEntry[];
}

/**
 * clipanion renders an option as `--cpu #0`, `-e,--env #0`, `--json`, or with a required one in
 * angle brackets (`<--ca-dir #0>`); `#0` stands for its value.
 */
function optionEntry(definition: string, description: string): OptionEntry {
  const [spellings = '', ...rest] = definition.replace(/^<|>$/g, '').split(' ');
  return { names: spellings.split(','), takesValue: rest.some((word) => word.startsWith('#')), description };
}

/** A registered command class: clipanion lists only each one's first path in its definitions. */
export interface CommandClassPaths {
  paths?: string[][];
}

export function commandTable(cli: Pick<Cli<BaseContext>, 'binaryName' | 'definitions'>, classes: readonly CommandClassPaths[] = []): CommandTable {
  const binaryName = cli.binaryName;
  const aliasesOf = (path: string[]): string[][] => {
    const owner = classes.find((command) => command.paths?.[0] !== undefined && sameWords(command.paths[0], path));
    return owner?.paths?.slice(1) ?? [];
  };
  const commands = cli.definitions().map((definition) => ({
    path: definition.path.split(' ').slice(1),
    aliases: aliasesOf(definition.path.split(' ').slice(1)),
    description: (definition.description ?? '').trim(),
    options: definition.options.map((option) => optionEntry(option.definition, (option.description ?? '').trim())),
  }));
  return { binaryName, commands };
}

/**
 * The command classes a command line can be for: those with a path (or alias) that starts with its
 * first word; all of them when none does, so a misspelled command still gets its did-you-mean and
 * a bare `--help` lists every command. clipanion builds its parser from every registered command,
 * which for all of job-cli's is more of `job-cli query`'s start-up than the whole call to the daemon
 * (issue 17); registering only the candidates leaves parsing, usage errors and `CMD --help` as
 * they were, since each concerns one command (or one group, like `context`).
 */
export function commandsNamedBy<T extends CommandClassPaths>(classes: readonly T[], args: readonly string[]): readonly T[] {
  const first = args[0];
  if (first === undefined || first.startsWith('-')) return classes;
  const named = classes.filter((command) => command.paths?.some((path) => path[0] === first) === true);
  return named.length > 0 ? named : classes;
}

/** The command whose path is the longest run of leading words of `args` (options skipped), if any. */
export function matchCommand(table: CommandTable, args: readonly string[]): CommandEntry | undefined {
  const words = leadingWords(args);
  let best: CommandEntry | undefined;
  for (const command of table.commands) {
    if (command.path.length <= words.length && command.path.every((word, i) => words[i] === word)) {
      if (best === undefined || command.path.length > best.path.length) best = command;
    }
  }
  return best;
}

/** The words before the first option or `--`: where a command's path is written. */
export function leadingWords(args: readonly string[]): string[] {
  const words: string[] = [];
  for (const arg of args) {
    if (arg.startsWith('-')) break;
    words.push(arg);
  }
  return words;
}

/** Commands under a group's words (`pki` → pki ca, pki server, pki client); none if a command has exactly that path. */
export function commandsUnder(table: CommandTable, group: readonly string[]): CommandEntry[] {
  if (group.length === 0 || table.commands.some((command) => sameWords(command.path, group))) return [];
  return table.commands.filter((command) => command.path.length > group.length && group.every((word, i) => command.path[i] === word));
}

function sameWords(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((word, i) => b[i] === word);
}

/** Every option name that takes a value, in any command. */
export function valueOptionNames(table: CommandTable): Set<string> {
  return new Set(table.commands.flatMap((command) => command.options.filter((option) => option.takesValue).flatMap((option) => option.names)));
}

const NEGATIVE_NUMBER = /^-(\d+(\.\d*)?|\.\d+)[A-Za-z]*$/;

/**
 * `--cpu -1` as `--cpu=-1`: clipanion takes anything starting with "-" for an option, so a negative
 * value would be "not enough arguments" instead of the range error it deserves. Only before `--`,
 * and only after an option that takes a value.
 */
export function bindNegativeValues(args: readonly string[], valueOptions: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (valueOptions.has(arg) && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
