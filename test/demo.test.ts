/** The README's main job: `understudy demo` runs Linux on a pair and shows a failover. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cliPath } from './helpers.js';

test('the demo boots Linux on a pair, kills the primary, and the shell goes on with the files intact', { timeout: 240_000 }, () => {
  const result = spawnSync(process.execPath, [cliPath, 'demo'], { encoding: 'latin1', input: '', timeout: 230_000 });
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
  const output = result.stdout;
  const killed = output.indexOf('killing the primary');
  assert.ok(killed > 0, output);
  assert.match(output.slice(killed), /the backup went live \d+ ms after/);
  const after = output.slice(output.indexOf('the backup is the primary now'));
  assert.match(after, /written before the failover/);
  assert.match(after, /after\.txt/);
  assert.match(after, /reboot: Power down/);
});
