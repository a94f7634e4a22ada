/**
 * The bundled command line (scripts/bundle.mjs, dist/bundle/): bin/understudy.js loads it only
 * while it matches the TypeScript build, and a guest runs the same from it as from the modules.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath, repoRoot } from './helpers.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bundle-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

function understudy(cli: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('bundle: the build leaves a bundle that matches it, so the command line runs from it', () => {
  const stamp = JSON.parse(fs.readFileSync(path.join(repoRoot, 'dist/bundle/stamp.json'), 'utf8')) as { buildInfoMtimeMs: number };
  assert.equal(stamp.buildInfoMtimeMs, fs.statSync(path.join(repoRoot, 'dist/.tsbuildinfo')).mtimeMs, 'run scripts/bundle.mjs after tsc (scripts/setup.sh does)');
  const bundled = fs.readdirSync(path.join(repoRoot, 'dist/bundle')).filter((name) => name.endsWith('.js'));
  assert.ok(bundled.includes('main.js'), bundled.join(' '));
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

test('bundle: a bundle older than the build, or UNDERSTUDY_BUNDLE=0, falls back to the modules', () => {
  // A copy of bin/understudy.js beside a dist/ whose modules are the real ones and whose bundle
  // is a stand-in that says where it came from.
  fs.mkdirSync(path.join(scratch, 'bin'));
  fs.mkdirSync(path.join(scratch, 'dist/bundle'), { recursive: true });
  fs.copyFileSync(cliPath, path.join(scratch, 'bin/understudy.js'));
  fs.symlinkSync(path.join(repoRoot, 'dist/src'), path.join(scratch, 'dist/src'));
  const buildInfo = path.join(scratch, 'dist/.tsbuildinfo');
  fs.writeFileSync(buildInfo, '{}\n');
  fs.writeFileSync(path.join(scratch, 'dist/bundle/main.js'), "export async function main() { process.stdout.write('the stand-in bundle\\n'); return 0; }\n");
  fs.writeFileSync(path.join(scratch, 'dist/bundle/stamp.json'), JSON.stringify({ buildInfoMtimeMs: fs.statSync(buildInfo).mtimeMs }));
  const cli = path.join(scratch, 'bin/understudy.js');

  assert.equal(understudy(cli, ['--version']).stdout, 'the stand-in bundle\n');
  assert.match(understudy(cli, ['--version'], { UNDERSTUDY_BUNDLE: '0' }).stdout, /^understudy \d+\.\d+\.\d+\n$/);
  const later = new Date(fs.statSync(buildInfo).mtimeMs + 5_000);
  fs.utimesSync(buildInfo, later, later); // tsc wrote a newer build
  assert.match(understudy(cli, ['--version']).stdout, /^understudy \d+\.\d+\.\d+\n$/);
  fs.rmSync(path.join(scratch, 'dist/bundle/stamp.json'));
  assert.match(understudy(cli, ['--version']).stdout, /^understudy \d+\.\d+\.\d+\n$/);
});
