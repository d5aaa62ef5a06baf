#!/usr/bin/env node
// Builds the addon at `npm ci`: with cmake-js (CMakeLists.txt) when cmake is installed, else with
// node-gyp (binding.gyp), which needs only python3, make and g++. Both build the same sources against
// the local Node headers; nothing is downloaded.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const forced = process.argv[2]; // "cmake" or "gyp" to choose

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function run(script, args) {
  const result = spawnSync(process.execPath, [script, ...args], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

const useCmake = forced ? forced === 'cmake' : has('cmake');
if (useCmake) {
  run(require.resolve('cmake-js/bin/cmake-js', { paths: [root] }), ['compile', '--log-level', 'warn']);
} else {
  if (!forced) console.error('jobworker: cmake not found, building the addon with node-gyp (binding.gyp) instead');
  // Build against this Node's own headers (e.g. /usr/include/node), never downloaded ones.
  const args = ['rebuild'];
  const prefix = path.dirname(path.dirname(process.execPath));
  if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) {
    args.push(`--nodedir=${prefix}`);
  }
  // npm hands install scripts its own bundled node-gyp; a checkout also has it as a dev dependency.
  run(process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] }), args);
}
