// Bundles the command line (dist/src/cli/main.js and the modules it loads) into a few files in
// dist/bundle/, for a faster start: Node 20 takes some 50 ms to resolve, read and link the
// 70-odd ES modules that `understudy run` loads one by one, and a bundle is a handful of files.
// It runs after tsc (scripts/setup.sh, `npm run build`); bin/understudy.js loads the bundle only
// while it matches the build it came from (the stamp below), and the modules otherwise.
//
// Each module's `import.meta.url` is rewritten to its own file's URL, relative to the bundle,
// so that what a module finds beside itself (the project's root, a worker's script) is the same
// bundled or not. npm packages stay outside the bundle, loaded from node_modules.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outdir = path.join(dist, 'bundle');
const buildInfo = path.join(dist, '.tsbuildinfo');

/** Replaces `import.meta.url` in every module with the URL of the module's own file. */
const ownUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return { contents: source, loader: 'js' };
      const relative = path.relative(outdir, args.path).split(path.sep).join('/');
      const own = `new URL(${JSON.stringify(relative)}, import.meta.url).href`;
      return { contents: source.replaceAll('import.meta.url', own), loader: 'js' };
    });
  },
};

fs.rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
  entryPoints: { main: path.join(dist, 'src/cli/main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  plugins: [ownUrl],
  logLevel: 'warning',
});
// The stamp: the TypeScript build this bundle was made from (tsc rewrites .tsbuildinfo whenever
// its output changes). A bundle older than the modules is never loaded.
const stamp = { buildInfoMtimeMs: fs.statSync(buildInfo).mtimeMs };
fs.writeFileSync(path.join(outdir, 'stamp.json'), JSON.stringify(stamp) + '\n');
