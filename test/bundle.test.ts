/**
 * The bundled command line (scripts/bundle.mjs, dist/bundle/): bin/load-command-line.js loads
 * it, with V8's code cache, only while it matches the TypeScript build, and a guest runs the
 * same from it as from the modules.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cliPath, repoRoot } from './helpers.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bundle-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Where a fresh process in `root` loads the command line from (bin/load-command-line.js). */
function loadedIn(root: string, env: NodeJS.ProcessEnv = {}): { from: string; cache: string } {
  const loader = pathToFileURL(path.join(root, 'bin/load-command-line.js')).href;
  const script = `const { loadCommandLine } = await import(${JSON.stringify(loader)}); const { from, cache, main } = await loadCommandLine(); console.log(JSON.stringify({ from, cache, main: typeof main }));`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const loaded = JSON.parse(result.stdout) as { from: string; cache: string; main: string };
  assert.equal(loaded.main, 'function');
  return { from: loaded.from, cache: loaded.cache };
}

function understudy(cli: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('bundle: the build leaves a bundle that matches it, with a code cache V8 accepts', () => {
  const stamp = JSON.parse(fs.readFileSync(path.join(repoRoot, 'dist/bundle/stamp.json'), 'utf8')) as { buildInfoMtimeMs: number };
  assert.equal(stamp.buildInfoMtimeMs, fs.statSync(path.join(repoRoot, 'dist/.tsbuildinfo')).mtimeMs, 'run scripts/bundle.mjs after tsc (scripts/setup.sh does)');
  // Strict mode, as the modules run in: the directive is the bundle's first statement.
  assert.match(fs.readFileSync(path.join(repoRoot, 'dist/bundle/understudy.cjs'), 'utf8'), /^'use strict';\n/);
  assert.deepEqual(loadedIn(repoRoot), { from: 'bundle', cache: 'accepted' });
  assert.deepEqual(loadedIn(repoRoot, { UNDERSTUDY_BUNDLE: '0' }), { from: 'modules', cache: 'none' });
});

test('bundle: a guest runs the same from the bundle as from the modules', () => {
  const args = ['run', '--kernel', path.join(repoRoot, 'guests/build/hello.elf'), '--clock', 'virtual'];
  const bundled = understudy(cliPath, args);
  const modules = understudy(cliPath, args, { UNDERSTUDY_BUNDLE: '0' });
  assert.equal(bundled.status, 0, bundled.stderr);
  assert.deepEqual(bundled, modules);
  // What a module finds beside itself (the project's root: package.json) is found from the bundle.
  assert.deepEqual(understudy(cliPath, ['--version']), understudy(cliPath, ['--version'], { UNDERSTUDY_BUNDLE: '0' }));
});

test('bundle: one older than the build, or UNDERSTUDY_BUNDLE=0, falls back to the modules; a cache that does not fit is ignored', () => {
  // A copy of bin/ beside a dist/ whose modules are the real ones and whose bundle is a
  // stand-in that says where it came from.
  fs.mkdirSync(path.join(scratch, 'bin'));
  fs.mkdirSync(path.join(scratch, 'dist/bundle'), { recursive: true });
  for (const name of ['understudy.js', 'load-command-line.js']) fs.copyFileSync(path.join(repoRoot, 'bin', name), path.join(scratch, 'bin', name));
  fs.symlinkSync(path.join(repoRoot, 'dist/src'), path.join(scratch, 'dist/src'));
  const buildInfo = path.join(scratch, 'dist/.tsbuildinfo');
  fs.writeFileSync(buildInfo, '{}\n');
  fs.writeFileSync(path.join(scratch, 'dist/bundle/understudy.cjs'), "exports.main = async () => { process.stdout.write('the stand-in bundle\\n'); return 0; };\n");
  const stampFile = path.join(scratch, 'dist/bundle/stamp.json');
  fs.writeFileSync(stampFile, JSON.stringify({ buildInfoMtimeMs: fs.statSync(buildInfo).mtimeMs }));
  const cli = path.join(scratch, 'bin/understudy.js');
  const version = /^understudy \d+\.\d+\.\d+\n$/;

  assert.equal(understudy(cli, ['--version']).stdout, 'the stand-in bundle\n');
  assert.deepEqual(loadedIn(scratch), { from: 'bundle', cache: 'none' });
  // Another bundle's cache (the real one): V8 rejects it, and the stand-in runs all the same.
  fs.copyFileSync(path.join(repoRoot, 'dist/bundle/understudy.cache'), path.join(scratch, 'dist/bundle/understudy.cache'));
  assert.deepEqual(loadedIn(scratch), { from: 'bundle', cache: 'rejected' });
  assert.equal(understudy(cli, ['--version']).stdout, 'the stand-in bundle\n');

  assert.match(understudy(cli, ['--version'], { UNDERSTUDY_BUNDLE: '0' }).stdout, version);
  const later = new Date(fs.statSync(buildInfo).mtimeMs + 5_000);
  fs.utimesSync(buildInfo, later, later); // tsc wrote a newer build
  assert.match(understudy(cli, ['--version']).stdout, version);
  assert.deepEqual(loadedIn(scratch), { from: 'modules', cache: 'none' });
  fs.rmSync(stampFile);
  assert.match(understudy(cli, ['--version']).stdout, version);
  // A stamp that matches beside no bundle at all (a directory emptied by hand): the modules.
  fs.writeFileSync(stampFile, JSON.stringify({ buildInfoMtimeMs: fs.statSync(buildInfo).mtimeMs }));
  assert.equal(understudy(cli, ['--version']).stdout, 'the stand-in bundle\n');
  fs.rmSync(path.join(scratch, 'dist/bundle/understudy.cjs'));
  assert.deepEqual(loadedIn(scratch), { from: 'modules', cache: 'none' });
  assert.match(understudy(cli, ['--version']).stdout, version);
});
