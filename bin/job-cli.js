#!/usr/bin/env node
'use strict';
const args = process.argv.slice(2);
// `--version` needs nothing but package.json: answered before the CLI's modules and command table
// load (clipanion and ~30 modules: most of its start-up), as clipanion would answer it.
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  // From the build's bundle and code cache when there are (dist/src/cli/job-cli/launch.js).
  require('../dist/src/cli/job-cli/launch.js').loadCli().main(args);
}
