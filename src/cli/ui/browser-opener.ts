// Opening the page in the user's browser without putting the token on a command line (other users
// can read every process's arguments in /proc): like Jupyter, the browser is handed a file, only
// readable by the user, that redirects to the URL with the token.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** A graphical session to open a browser in. */
export function hasDesktop(env: NodeJS.ProcessEnv): boolean {
  return (env.DISPLAY ?? '') !== '' || (env.WAYLAND_DISPLAY ?? '') !== '';
}

const escapeAttribute = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** Starts xdg-open on the redirect file; `cleanup` removes the file (call it when the UI stops). */
export async function openInBrowser(url: string): Promise<{ failure?: string; cleanup(): void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'jobworker-ui-')); // mode 0700
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const file = path.join(dir, 'open.html');
  const href = escapeAttribute(url);
  writeFileSync(file, `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${href}"><title>jobworker</title><a href="${href}">Open the jobworker UI</a>\n`, { mode: 0o600 });
  const child = spawn('xdg-open', [file], { stdio: 'ignore', detached: true });
  const failure = await new Promise<string | undefined>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ENOENT' ? 'xdg-open is not installed' : error.message));
    child.once('spawn', () => resolve(undefined));
  });
  child.unref();
  return failure === undefined ? { cleanup } : { failure, cleanup };
}
