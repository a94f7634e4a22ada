/** Unit tests for the command-line helpers that `pair` uses to build its replicas' arguments. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childArguments } from './options.js';

const spec = { insecure: { type: 'boolean' }, arbiter: { type: 'string' }, kernel: { type: 'string' }, verbose: { type: 'boolean' } } as const;

test('childArguments drops parent-only options: a flag alone, a value after it or after =', () => {
  assert.deepEqual(childArguments(['--insecure', '--kernel', 'a.elf'], ['insecure', 'arbiter'], spec), ['--kernel', 'a.elf']);
  assert.deepEqual(childArguments(['--arbiter', 'dir', '--kernel', 'a.elf', '--verbose'], ['insecure', 'arbiter'], spec), ['--kernel', 'a.elf', '--verbose']);
  assert.deepEqual(childArguments(['--arbiter=dir', '--insecure', '--verbose'], ['insecure', 'arbiter'], spec), ['--verbose']);
});

test('childArguments keeps everything after -- as it is', () => {
  assert.deepEqual(childArguments(['--kernel', 'a.elf', '--', '--insecure'], ['insecure'], spec), ['--kernel', 'a.elf', '--', '--insecure']);
});
