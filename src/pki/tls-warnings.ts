// What the TLS loaders say about usable files (expiring soon, a key others can read), shared by the
// full loader (./load.ts) and the quick one (./quick-load.ts) so that both say it alike.
import { stat } from 'node:fs/promises';

import type { TlsUse } from './load';

/** Warn when the certificate expires within this many days. */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 24 * 60 * 60 * 1000;

/** How to get a new file of each kind (the `job-worker pki` commands). */
export const REMEDY: Record<TlsUse | 'ca', string> = {
  ca: 'create one with `job-worker pki ca ...`',
  server: 'issue a new one with `job-worker pki server ...`',
  client: 'issue a new one with `job-worker pki client ...`',
};

/** ISO 8601 without milliseconds. */
export function day(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A warning when the certificate in `file` expires within EXPIRY_WARNING_DAYS of `now`. */
export function expiryWarning(label: string, file: string, notAfter: Date, now: Date, remedy: string): string | undefined {
  const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
  if (daysLeft >= EXPIRY_WARNING_DAYS) return undefined;
  return `${label} ${file}: expires on ${day(notAfter)} (in ${daysLeft} day${daysLeft === 1 ? '' : 's'}); ${remedy}`;
}

/** A warning when other users may read the private key in `file`. */
export async function keyModeWarning(label: string, file: string): Promise<string | undefined> {
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  return `${label} ${file}: mode ${mode.toString(8).padStart(4, '0')} lets other users read it; chmod 600 it`;
}
