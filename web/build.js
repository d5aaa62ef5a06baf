// Builds the page into dist/web: web/src bundled with the packages it uses (xterm.js, uPlot) by
// esbuild into assets/app.js and assets/app.css, and index.html beside them. Run by `npm run build`
// (so by npm ci, npm pack and npm test); the result ships in the package, so nothing is built or
// fetched where it is installed or run.
'use strict';
const { copyFileSync, mkdirSync, rmSync } = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');
const out = path.join(root, 'dist', 'web');

rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, 'assets'), { recursive: true });
esbuild.buildSync({
  entryPoints: { app: path.join(__dirname, 'src', 'main.ts') },
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  outdir: path.join(out, 'assets'),
  legalComments: 'linked', // the licences of xterm.js and uPlot go along, in app.js.LEGAL.txt
  logLevel: 'warning',
});
copyFileSync(path.join(__dirname, 'index.html'), path.join(out, 'index.html'));
