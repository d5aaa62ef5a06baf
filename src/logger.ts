// The one logger: structured records, written as JSON lines (production, log collectors) or as
// readable lines in a terminal. Synchronous writes to stderr: few lines, and none may be lost
// when the daemon dies right after writing one. A line stderr refuses (EPIPE: whoever read it went
// away; EAGAIN: a non-blocking pipe is full) is dropped and counted: logging must never fail the
// request it reports on, nor stop a shutdown half-way (its cgroups left behind).
import { writeSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';
export type LogFields = Record<string, unknown>;

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: LogLevel;
  /** Default: text when stderr is a terminal, else json. */
  format?: LogFormat;
  /** Where lines go; default stderr (fd 2). */
  write?: (line: string) => void;
}

export class Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  #write: (line: string) => void;
  #base: LogFields;

  constructor(options: LoggerOptions = {}, base: LogFields = {}) {
    this.level = options.level ?? 'info';
    this.format = options.format ?? (process.stderr.isTTY ? 'text' : 'json');
    this.#write = options.write ?? writeToStderr;
    this.#base = base;
  }

  /** A logger that adds `fields` to every record (e.g. { component: 'server' }). */
  child(fields: LogFields): Logger {
    return new Logger({ level: this.level, format: this.format, write: this.#write }, { ...this.#base, ...fields });
  }

  debug(msg: string, fields?: LogFields): void {
    this.#log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.#log('error', msg, fields);
  }

  #log(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (rank[level] < rank[this.level]) return;
    const record = { time: new Date().toISOString(), level, msg, ...this.#base, ...fields };
    this.#write(this.format === 'json' ? `${JSON.stringify(record, jsonSafe)}\n` : textLine(record));
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

function textLine(record: LogFields & { time: string; level: string; msg: string }): string {
  const { time, level, msg, ...rest } = record;
  const extras = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v, jsonSafe)}`)
    .join(' ');
  return `${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${msg}${extras ? `  ${extras}` : ''}\n`;
}

let droppedLogLines = 0;

/** Lines stderr refused since the process started (see the top of this file). */
export function droppedLogLineCount(): number {
  return droppedLogLines;
}

function writeToStderr(line: string): void {
  try {
    writeSync(2, line);
  } catch {
    droppedLogLines++;
  }
}

/** A logger that drops everything (tests, embedding without logs). */
export const silentLogger = new Logger({ level: 'error', write: () => undefined });
