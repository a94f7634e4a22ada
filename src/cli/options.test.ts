/** Unit tests for the command-line helpers: the replicas' arguments that `pair` builds, the default tier. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childArguments, cpuEnvironmentVariable, defaultCpu, defaultCpuMode, replicationSettings, UsageError } from './options.js';

const spec = { insecure: { type: 'boolean' }, arbiter: { type: 'string' }, kernel: { type: 'string' }, verbose: { type: 'boolean' } } as const;

test('childArguments drops parent-only options: a flag alone, a value after it or after =', () => {
  assert.deepEqual(childArguments(['--insecure', '--kernel', 'a.elf'], ['insecure', 'arbiter'], spec), ['--kernel', 'a.elf']);
  assert.deepEqual(childArguments(['--arbiter', 'dir', '--kernel', 'a.elf', '--verbose'], ['insecure', 'arbiter'], spec), ['--kernel', 'a.elf', '--verbose']);
  assert.deepEqual(childArguments(['--arbiter=dir', '--insecure', '--verbose'], ['insecure', 'arbiter'], spec), ['--verbose']);
});

test('childArguments keeps everything after -- as it is', () => {
  assert.deepEqual(childArguments(['--kernel', 'a.elf', '--', '--insecure'], ['insecure'], spec), ['--kernel', 'a.elf', '--', '--insecure']);
});

test('the tier without --cpu: UNDERSTUDY_CPU when set, the default otherwise; a bad name is a usage error', () => {
  assert.equal(defaultCpu({}), defaultCpuMode);
  assert.equal(defaultCpu({ [cpuEnvironmentVariable]: '' }), defaultCpuMode);
  assert.equal(defaultCpu({ [cpuEnvironmentVariable]: 'jit' }), 'jit');
  assert.equal(defaultCpu({ [cpuEnvironmentVariable]: 'interp' }), 'interp');
  assert.throws(() => defaultCpu({ [cpuEnvironmentVariable]: 'fast' }), (error) => error instanceof UsageError && /UNDERSTUDY_CPU must be interp, jit, wasm, lockstep, not "fast"/.test(error.message));
});

test('--reads-in-log: the reads travel in the log (off by default: backups read the shared disk)', () => {
  assert.equal(replicationSettings({ insecure: true, 'reads-in-log': true }).options.readsInLog, true);
  assert.equal(replicationSettings({ insecure: true }).options.readsInLog, undefined);
});
