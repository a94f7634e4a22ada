#!/usr/bin/env node
// understudy's command line. The TypeScript sources build into dist/ (npm run build);
// load-command-line.js loads them, bundled for a faster start when the bundle is current.
import { existsSync } from 'node:fs';
import { loadCommandLine, modulesEntry } from './load-command-line.js';

if (!existsSync(modulesEntry)) {
  process.stderr.write('understudy: not built yet: run `npm run build` (or the README\'s set-up command) first\n');
  process.exit(2);
}
const { main } = await loadCommandLine();
process.exitCode = await main(process.argv.slice(2));
