// The page and its assets, as the build left them in dist/web (bundled by esbuild from web/ and the
// packages it uses: xterm.js, uPlot); read once at start. The page opened with the token gets the
// session secret written into it (./access-guard.ts); every other copy of it has none.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ServerResponse } from 'node:http';

import { CliError } from '../run';

/** dist/web, next to dist/src (this file is dist/src/cli/ui/static-assets.js). */
export const ASSETS_DIR = path.join(__dirname, '..', '..', '..', 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};
const SESSION_PLACEHOLDER = '%SESSION%';

export class StaticAssets {
  readonly #files = new Map<string, { type: string; bytes: Buffer }>();
  readonly #page: string;

  constructor(dir: string = ASSETS_DIR) {
    let names: string[];
    try {
      names = readdirSync(path.join(dir, 'assets'));
      this.#page = readFileSync(path.join(dir, 'index.html'), 'utf8');
    } catch (error) {
      throw new CliError(`the UI's files are missing from ${dir} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, 'they are built by `npm run build` (npm ci and npm pack run it)');
    }
    for (const name of names) {
      const type = TYPES[path.extname(name)];
      if (type !== undefined) this.#files.set(`/assets/${name}`, { type, bytes: readFileSync(path.join(dir, 'assets', name)) });
    }
  }

  serve(pathname: string, response: ServerResponse, page: { session: string | null }): void {
    if (pathname === '/' || pathname === '/index.html') {
      response.writeHead(200, { 'content-type': TYPES['.html']! }).end(this.#page.replace(SESSION_PLACEHOLDER, page.session ?? ''));
      return;
    }
    const file = this.#files.get(pathname);
    if (file === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`no ${pathname} here\n`);
      return;
    }
    response.writeHead(200, { 'content-type': file.type, 'content-length': file.bytes.length }).end(file.bytes);
  }
}
