// Bundles the command line (dist/src/cli/main.js and every module it loads) into one CommonJS
// file, dist/bundle/understudy.cjs, and makes V8's code cache for it, for a faster start:
// Node 20 took some 45 ms to resolve, read and link the 70-odd ES modules `understudy run`
// loads one by one, and then parsed and compiled each function the first time it ran.
// bin/load-command-line.js loads the bundle only while it matches the TypeScript build (the
// stamp below), and the modules otherwise. Run it after tsc and the guest programs
// (scripts/setup.sh, `npm run build`).
//
// Each module's `import.meta.url` is rewritten to its own file's URL, relative to the bundle,
// so that what a module finds beside itself (the project's root, a worker's script) is the same
// bundled or not. npm packages stay outside the bundle, loaded from node_modules.
//
// The code cache comes from a training run: the warm-up guest (guests/build/warmup.elf), run as
// a guest, reaches the interpreter's paths, the MMU, traps and devices, and so V8 compiles what
// a boot needs first; the process writes the cache as it exits.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outdir = path.join(dist, 'bundle');
const buildInfo = path.join(dist, '.tsbuildinfo');
const cache = path.join(outdir, 'understudy.cache');
const trainingGuest = path.join(root, 'guests/build/warmup.elf');
const cli = path.join(root, 'bin/understudy.js');

/** The bundle's own URL, set by its first line (esbuild's banner): no module can shadow it. */
const bundleUrl = '__understudyBundleUrl';

/**
 * Two rewrites of each module's source. `import.meta.url` becomes the URL of the module's own
 * file. And a module's `import('./x.js')` (the command line loads each command's module when
 * the command runs) becomes a static import: in one file the lazy load saves nothing, and
 * esbuild would wrap every module reachable from it in a function run on first use, the
 * interpreter's and the MMU's among them.
 */
const rewrites = {
  name: 'own-url-static-imports',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => {
      let source = await fs.promises.readFile(args.path, 'utf8');
      const relative = path.relative(outdir, args.path).split(path.sep).join('/');
      const own = `new URL(${JSON.stringify(relative)}, ${bundleUrl}).href`;
      source = source.replaceAll('import.meta.url', own);
      const imports = [];
      source = source.replace(/\bimport\((['"])(\.\.?\/[^'"]+)\1\)/g, (_, quote, specifier) => {
        imports.push(`import * as __static${imports.length} from ${JSON.stringify(specifier)};`);
        return `Promise.resolve(__static${imports.length - 1})`;
      });
      return { contents: imports.join('\n') + (imports.length > 0 ? '\n' : '') + source, loader: 'js' };
    });
  },
};

function fail(message) {
  fs.rmSync(outdir, { recursive: true, force: true });
  process.stderr.write(`bundle: ${message}\n`);
  process.exit(1);
}

fs.rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
  entryPoints: { understudy: path.join(dist, 'src/cli/main.js') },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  plugins: [rewrites],
  // Strict, as the modules are: the directive must stay the first statement.
  banner: { js: `'use strict';\nvar ${bundleUrl} = require("node:url").pathToFileURL(__filename);` },
  logLevel: 'warning',
});
// A script has no import() in Node 20 (not without --experimental-vm-modules): the modules load
// npm packages late with require. And no module is wrapped for a lazy start (above).
const bundled = fs.readFileSync(path.join(outdir, 'understudy.cjs'), 'utf8');
const dynamicImport = /\bimport\(\s*["'`]([^"'`]*)/.exec(bundled);
if (dynamicImport !== null) fail(`the bundle would import() ${dynamicImport[1]}: load it with require (createRequire) instead`);
if (bundled.includes('__esm(')) fail('a module of the bundle is wrapped for a lazy start: an import() esbuild could not see as one');
// The stamp: the TypeScript build this bundle was made from (tsc rewrites .tsbuildinfo whenever
// its output changes). A bundle older than the modules is never loaded.
const stamp = { buildInfoMtimeMs: fs.statSync(buildInfo).mtimeMs };
fs.writeFileSync(path.join(outdir, 'stamp.json'), JSON.stringify(stamp) + '\n');

if (!fs.existsSync(trainingGuest)) {
  process.stderr.write('bundle: no code cache: the guest programs are not built (make -C guests), so the command line compiles as it goes\n');
} else {
  const training = spawnSync(process.execPath, [cli, 'run', '--kernel', trainingGuest, '--clock', 'virtual'], {
    // The bundle, even if this shell asks for the modules (UNDERSTUDY_BUNDLE=0).
    env: { ...process.env, UNDERSTUDY_BUNDLE_TRAIN: cache, UNDERSTUDY_BUNDLE: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (training.status !== 0 || !fs.existsSync(cache)) fail(`the training run failed (status ${training.status}): ${training.stderr}`);
}
