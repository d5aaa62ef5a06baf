#!/usr/bin/env node
'use strict';
require('../dist/src/cli/job-cli/main.js').main(process.argv.slice(2));
