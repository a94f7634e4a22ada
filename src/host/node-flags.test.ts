import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { cliArguments, cliExecArgv, cliScript, machineNodeFlags } from './node-flags.js';

test('bin/understudy.js starts Node with the flags the processes understudy starts get', () => {
  const first = fs.readFileSync(cliScript, 'utf8').split('\n')[0];
  assert.equal(first, `#!/usr/bin/env -S node ${machineNodeFlags.join(' ')}`);
  assert.ok((fs.statSync(cliScript).mode & 0o111) !== 0, 'the script is executable');
  assert.deepEqual(cliArguments(['run']), [...machineNodeFlags, cliScript, 'run']);
  for (const flag of machineNodeFlags) assert.equal(cliExecArgv().filter((own) => own === flag).length, 1);
});

test('Node accepts the flags', () => {
  const result = spawnSync(process.execPath, [...machineNodeFlags, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
  assert.equal(result.stderr, '');
  assert.equal(result.stdout, 'ok');
});
