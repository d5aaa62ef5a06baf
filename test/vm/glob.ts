// A small glob for the suite list (Node 20 has no fs.globSync): `*` and `?` within one segment,
// `**` for any number of segments. Results are sorted within each pattern, deduplicated across them.
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

function segmentRegExp(segment: string): RegExp {
  let source = '';
  for (const ch of segment) {
    if (ch === '*') source += '[^/]*';
    else if (ch === '?') source += '[^/]';
    else source += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function expand(base: string, segments: readonly string[], out: string[]): void {
  if (segments.length === 0) {
    out.push(base);
    return;
  }
  const [head, ...rest] = segments as [string, ...string[]];
  if (head === '**') {
    expand(base, rest, out); // zero segments
    for (const entry of listDir(base)) {
      const child = path.join(base, entry);
      if (isDirectory(child)) expand(child, segments, out);
    }
    return;
  }
  if (!/[*?]/.test(head)) {
    const child = path.join(base, head);
    if (rest.length === 0 ? statSafe(child) : isDirectory(child)) expand(child, rest, out);
    return;
  }
  const re = segmentRegExp(head);
  for (const entry of listDir(base)) {
    if (!re.test(entry)) continue;
    const child = path.join(base, entry);
    if (rest.length === 0 || isDirectory(child)) expand(child, rest, out);
  }
}

function statSafe(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Regular files under `root` matching the patterns, as root-relative paths. */
export function globFiles(root: string, patterns: readonly string[]): string[] {
  const seen = new Set<string>();
  const result: string[] = [];
  for (const pattern of patterns) {
    const matches: string[] = [];
    expand(root, pattern.split('/').filter((s) => s !== '' && s !== '.'), matches);
    for (const match of matches.sort()) {
      const rel = path.relative(root, match);
      if (seen.has(rel) || !statSync(match).isFile()) continue;
      seen.add(rel);
      result.push(rel);
    }
  }
  return result;
}
