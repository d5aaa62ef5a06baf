// Human sizes, rates, durations and times: strict parsers for flag values and the formatters the
// output uses. Pure. Parsers throw UnitError (a reason, no flag name); commands add the flag.
//
// Sizes are 1024-based, like docker and the kernel's own memory.max suffixes: 256M is 256 MiB.
// K, M, G and T (any case) mean KiB, MiB, GiB and TiB; "KiB"/"Ki" spell the same thing; B or no
// suffix means bytes. "KB", "MB"… are refused: people read them as 1000-based, and a limit must
// not be 5% off from what its writer meant. Fractions are allowed and rounded to the nearest byte.
// Output: memory in IEC units (MiB), disk throughput in SI units (MB/s), like iostat.

export { formatBytes } from '../../byte-size';

export class UnitError extends Error {}

const SIZE_FACTORS: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const NUMBER = '(\\d+(?:\\.\\d+)?|\\.\\d+)';

/** "256M" → 268435456. */
export function parseSize(text: string): number {
  if (new RegExp(`^-${NUMBER}`).test(text.trim())) throw new UnitError(`must not be negative, got ${JSON.stringify(text)}`);
  const match = new RegExp(`^${NUMBER}\\s*([A-Za-z]*)$`).exec(text.trim());
  if (match === null) throw new UnitError(`expected a size like 256M, 1.5G or 4096, got ${JSON.stringify(text)}`);
  const unit = match[2]!;
  let factor: number;
  const prefix = /^([kmgt])(?:i|ib)?$/i.exec(unit);
  if (unit === '' || /^b$/i.test(unit)) factor = 1;
  else if (prefix !== null) factor = SIZE_FACTORS[prefix[1]!.toLowerCase()]!;
  else if (/^[kmgt]b$/i.test(unit)) {
    const letter = unit[0]!.toUpperCase();
    throw new UnitError(`${JSON.stringify(unit)} is ambiguous: write ${letter} or ${letter}iB (both 1024-based)`);
  } else throw new UnitError(`unknown size unit ${JSON.stringify(unit)} in ${JSON.stringify(text)}; use K, M, G or T (1024-based)`);
  const bytes = Math.round(Number(match[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`${JSON.stringify(text)} is too large`);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "10s", "500ms", "1.5s", "1h30m" → milliseconds (rounded). A bare number is refused, except 0. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  if (trimmed.startsWith('-')) throw new UnitError(`must not be negative, got ${JSON.stringify(text)}`);
  const part = new RegExp(`${NUMBER}(ms|s|m|h|d)`, 'gy');
  let total = 0;
  let at = 0;
  for (let match = part.exec(trimmed); match !== null; match = part.exec(trimmed)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
    at = part.lastIndex;
  }
  if (trimmed === '' || at !== trimmed.length) {
    const hint = /^\d+(\.\d+)?$/.test(trimmed) ? ' (add a unit: ms, s, m, h or d)' : '';
    throw new UnitError(`expected a duration like 10s, 500ms or 1h30m, got ${JSON.stringify(text)}${hint}`);
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw new UnitError(`${JSON.stringify(text)} is too long`);
  return ms;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** `--since`: a duration before `now` ("10m") or an RFC 3339 time with a zone ("2024-05-01T10:00:00Z"). */
export function parseSince(text: string, now: Date): Date {
  const trimmed = text.trim();
  if (RFC3339.test(trimmed)) {
    const date = new Date(trimmed.replace(' ', 'T'));
    if (Number.isNaN(date.getTime())) throw new UnitError(`${JSON.stringify(text)} is not a valid time`);
    return date;
  }
  try {
    return new Date(now.getTime() - parseDuration(trimmed));
  } catch {
    throw new UnitError(`expected a duration like 10m or an RFC 3339 time like 2024-05-01T10:00:00Z, got ${JSON.stringify(text)}`);
  }
}

/** `DEV=10M` or `10M` (no device: the disk behind the job's working directory). */
export function parseDeviceValue<T>(text: string, parseValue: (value: string) => T): { device: string; value: T } {
  const at = text.lastIndexOf('=');
  const device = at < 0 ? '' : text.slice(0, at);
  if (at === 0) throw new UnitError(`the device before "=" is empty in ${JSON.stringify(text)}`);
  return { device, value: parseValue(at < 0 ? text : text.slice(at + 1)) };
}

/** A whole number in [min, max]. */
export function parseInteger(text: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim())) throw new UnitError(`expected a whole number, got ${JSON.stringify(text)}`);
  const value = Number(text.trim());
  if (value < min || value > max) throw new UnitError(`must be from ${min} to ${max}, got ${value}`);
  return value;
}

/** A positive decimal number ("0.5", "2"). */
export function parsePositiveNumber(text: string): number {
  if (!new RegExp(`^-?${NUMBER}$`).test(text.trim())) throw new UnitError(`expected a number like 0.5 or 2, got ${JSON.stringify(text)}`);
  const value = Number(text.trim());
  if (!(value > 0)) throw new UnitError(`must be positive (more than 0), got ${text.trim()}`);
  return value;
}

function trimNumber(value: number, digits: number): string {
  return value.toFixed(digits).replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
}

/** SI, per second: "0 B/s", "850 kB/s", "12.5 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
  let value = bytesPerSecond;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${trimNumber(value, unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** "850ms", "12.3s", "5m03s", "2h05m", "3d04h". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${trimNumber(ms / 1000, ms < 10_000 ? 2 : 1)}s`;
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

/** "5s ago", "3m ago", "just now"; a time in the future reads "in 5s". */
export function formatAgo(time: Date, now: Date): string {
  const ms = now.getTime() - time.getTime();
  if (Math.abs(ms) < 1000) return 'just now';
  const text = formatDuration(Math.abs(ms)).replace(/^(\d+[a-z]+)\d+[a-z]+$/, '$1').replace(/\.\d+s$/, 's');
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

/** CPU use as a percentage of one CPU: "45.2%", "200%" for two busy CPUs. */
export function formatPercent(percent: number): string {
  return `${trimNumber(percent, percent < 10 ? 2 : percent < 100 ? 1 : 0)}%`;
}
