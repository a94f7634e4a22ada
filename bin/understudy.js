#!/usr/bin/env node
// understudy's command line. The TypeScript sources build into dist/ (npm run build), and
// scripts/bundle.mjs bundles the command line into dist/bundle/ for a faster start. The bundle
// is loaded only while its stamp matches the TypeScript build (tsc rewrites dist/.tsbuildinfo
// whenever its output changes), and never with UNDERSTUDY_BUNDLE=0; the modules otherwise.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const file = (relative) => fileURLToPath(new URL(relative, import.meta.url));
const modules = file('../dist/src/cli/main.js');
if (!existsSync(modules)) {
  process.stderr.write('understudy: not built yet: run `npm run build` (or the README\'s set-up command) first\n');
  process.exit(2);
}

function bundleIsCurrent() {
  if (process.env.UNDERSTUDY_BUNDLE === '0') return false;
  try {
    const stamp = JSON.parse(readFileSync(file('../dist/bundle/stamp.json'), 'utf8'));
    return stamp.buildInfoMtimeMs === statSync(file('../dist/.tsbuildinfo')).mtimeMs;
  } catch {
    return false;
  }
}

const entry = bundleIsCurrent() ? file('../dist/bundle/main.js') : modules;
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
