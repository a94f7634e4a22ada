// Loads understudy's command line: the bundle (dist/bundle/, made by scripts/bundle.mjs after
// tsc) with V8's code cache when it matches the TypeScript build, the modules otherwise.
//
// The bundle is one CommonJS file, compiled here with node:vm so that V8 can take the bytecode
// of the functions a run needs from a cache made at build time, instead of parsing and
// compiling them in every process (Node 20 has no compile cache for ES modules). It is used
// only while its stamp matches dist/.tsbuildinfo (tsc rewrites it whenever its output
// changes), and never with UNDERSTUDY_BUNDLE=0. V8 checks the cache against the source's
// length and its own version and flags, and ignores a cache that does not fit; the cache is
// made for the bundle beside it and removed with it, so it fits no other.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as vm from 'node:vm';

const file = (relative) => fileURLToPath(new URL(relative, import.meta.url));
export const modulesEntry = file('../dist/src/cli/main.js');
const bundleDirectory = file('../dist/bundle');
const bundleFile = file('../dist/bundle/understudy.cjs');
const cacheFile = file('../dist/bundle/understudy.cache');
const stampFile = file('../dist/bundle/stamp.json');
const buildInfoFile = file('../dist/.tsbuildinfo');

/** Whether the bundle was made from the TypeScript build now in dist/. */
function bundleIsCurrent() {
  if (process.env.UNDERSTUDY_BUNDLE === '0') return false;
  try {
    const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
    return stamp.buildInfoMtimeMs === statSync(buildInfoFile).mtimeMs;
  } catch {
    return false;
  }
}

/** The file's contents, or undefined if it cannot be read. */
function readIfPresent(path, encoding) {
  try {
    return readFileSync(path, encoding);
  } catch {
    return undefined;
  }
}

/**
 * The command line's `main`, and where it came from: `from` is 'bundle' or 'modules'; `cache`
 * is 'accepted', 'rejected' or 'none'. With UNDERSTUDY_BUNDLE_TRAIN set to a file (the build's
 * training run), the process writes the code cache of what it compiled there when it exits.
 */
export async function loadCommandLine() {
  const source = bundleIsCurrent() ? readIfPresent(bundleFile, 'utf8') : undefined;
  if (source === undefined) {
    const { main } = await import(pathToFileURL(modulesEntry).href);
    return { main, from: 'modules', cache: 'none' };
  }
  const cachedData = readIfPresent(cacheFile);
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundleFile,
    cachedData,
  });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundleFile), module, bundleFile, bundleDirectory);
  const train = process.env.UNDERSTUDY_BUNDLE_TRAIN;
  if (train !== undefined && train !== '') process.on('exit', () => writeFileSync(train, script.createCachedData()));
  const cache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  return { main: module.exports.main, from: 'bundle', cache };
}
