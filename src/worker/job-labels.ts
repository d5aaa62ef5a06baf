// A job's name and labels: what they may be (checked at the library's boundary, so that every
// record and every listing holds bounded, printable text), and label selectors ("key=value" or
// "key") to find jobs by. Keys are Kubernetes' label keys: a name, optionally with a DNS prefix.
import { ValidationError } from '../errors';
import { isJobName, JOB_NAME_RULE } from '../job-id';

export const LABEL_BOUNDS = {
  /** Labels per job; also the most terms of a selector. */
  count: 32,
  /** Keys and values of one job together, UTF-8 bytes: bounds what each journal record carries. */
  totalBytes: 8192,
  /** A key's name part (after the prefix), characters. */
  keyNameChars: 63,
  /** A key's DNS prefix (before the '/'), characters. */
  keyPrefixChars: 253,
  /** A value, UTF-8 bytes. */
  valueBytes: 255,
} as const;

/** The labels of a job without any, shared (records written before labels existed have none either). */
export const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

const KEY_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const KEY_PREFIX = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
const CONTROL = /\p{Cc}/u;
/** Half of a UTF-16 surrogate pair, alone: no UTF-8 can carry it. */
const LONE_SURROGATE = /\p{Cs}/u;

const KEY_RULE = `1-${LABEL_BOUNDS.keyNameChars} letters, digits, '_', '.' or '-', starting and ending with a letter or digit, optionally after a DNS prefix and '/' (example.com/tier)`;

function quoted(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** Why `key` is not a label key; null when it is one. */
function keyProblem(key: string): string | null {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? null : key.slice(0, slash);
  if (prefix !== null && (prefix.length > LABEL_BOUNDS.keyPrefixChars || !KEY_PREFIX.test(prefix))) {
    return `label key ${quoted(key)}: its prefix must be a DNS name (lower-case letters, digits and '-', parts joined by '.', at most ${LABEL_BOUNDS.keyPrefixChars} characters)`;
  }
  if (!KEY_NAME.test(name)) return `label key ${quoted(key)} must be ${KEY_RULE}`;
  return null;
}

/** Why `value` is not a label value; null when it is one. */
function valueProblem(key: string, value: string): string | null {
  if (Buffer.byteLength(value, 'utf8') > LABEL_BOUNDS.valueBytes) return `the value of label ${key} is longer than ${LABEL_BOUNDS.valueBytes} bytes`;
  if (CONTROL.test(value)) return `the value of label ${key} must not contain control characters (newlines, tabs, NUL…)`;
  if (LONE_SURROGATE.test(value)) return `the value of label ${key} must be valid Unicode text`;
  return null;
}

/** A job name, or null for none; `field` names it in errors. */
export function checkJobName(field: string, name: unknown): string | null {
  if (name === undefined || name === null || name === '') return null;
  if (typeof name !== 'string' || !isJobName(name)) {
    throw new ValidationError(field, `must be ${JOB_NAME_RULE}, got ${typeof name === 'string' ? quoted(name) : typeof name}`);
  }
  return name;
}

/** A job's labels, checked and copied; `field` names them in errors. */
export function checkLabels(field: string, labels: unknown): Record<string, string> {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw new ValidationError(field, 'must be an object of key: value strings');
  const entries = Object.entries(labels);
  if (entries.length > LABEL_BOUNDS.count) throw new ValidationError(field, `has ${entries.length} labels; at most ${LABEL_BOUNDS.count}`);
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [key, value] of entries) {
    const problem = keyProblem(key) ?? (typeof value === 'string' ? valueProblem(key, value) : `the value of label ${key} must be a string`);
    if (problem !== null) throw new ValidationError(field, problem);
    out[key] = value as string;
    bytes += Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value as string, 'utf8');
  }
  if (bytes > LABEL_BOUNDS.totalBytes) throw new ValidationError(field, `keys and values take ${bytes} bytes together; at most ${LABEL_BOUNDS.totalBytes}`);
  return out;
}

/** One term of a label selector: the label is there (value null) or has this value. */
export interface LabelTerm {
  key: string;
  value: string | null;
}

/**
 * "key=value" and "key" terms as a selector (every term must match); `field` names the list in
 * errors (`field[i]`).
 */
export function parseLabelSelector(field: string, terms: readonly string[]): LabelTerm[] {
  if (terms.length > LABEL_BOUNDS.count) throw new ValidationError(field, `has ${terms.length} terms; at most ${LABEL_BOUNDS.count}`);
  return terms.map((term, i) => {
    if (typeof term !== 'string') throw new ValidationError(`${field}[${i}]`, 'must be a string: "key=value" or "key"');
    const at = term.indexOf('=');
    const key = at < 0 ? term : term.slice(0, at);
    const value = at < 0 ? null : term.slice(at + 1);
    const problem = keyProblem(key) ?? (value === null ? null : valueProblem(key, value));
    if (problem !== null) throw new ValidationError(`${field}[${i}]`, `${problem} (a term is "key=value" or "key")`);
    return { key, value };
  });
}

/** Whether `labels` match every term of the selector. */
export function matchesLabels(labels: Readonly<Record<string, string>>, selector: readonly LabelTerm[]): boolean {
  return selector.every(({ key, value }) => Object.hasOwn(labels, key) && (value === null || labels[key] === value));
}
