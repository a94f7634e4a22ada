/**
 * The CPU warm-up (src/host/warm-up.ts): the warm-up guest runs to power-off on both tiers,
 * leaves nothing behind that a guest could see, and a missing or broken warm-up guest is
 * harmless. (Whether it covers the interpreter's paths is a question for V8's trace flags, in
 * a benchmark: docs/BENCHMARKS.md, "Warming up the interpreter".)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runGuest } from './helpers.js';
import { warmsUp, warmUpCpu, warmUpEnvironmentVariable, warmUpGuestFile, warmUpInstructionsMax, warmUpRoundsDefault } from '../src/host/warm-up.js';

test('a guest runs the same before and after a warm-up in its process: output, count and state digest', async () => {
  // This file runs in a process of its own (node --test), so nothing has warmed up before this test.
  for (const cpu of ['interp', 'jit', 'wasm'] as const) {
    const cold = await runGuest('counters', { cpu });
    const warmUp = warmUpCpu(cpu, { again: true });
    assert.equal(warmUp.kind, 'done', JSON.stringify(warmUp));
    const warm = await runGuest('counters', { cpu });
    assert.deepEqual(warm.outcome, cold.outcome);
    assert.equal(warm.output, cold.output);
    assert.equal(warm.machine.retiredInstructions, cold.machine.retiredInstructions);
    assert.equal(warm.machine.digest(), cold.machine.digest());
  }
});

test('processes warm up before booting Linux, not before a bare-metal guest', () => {
  assert.equal(warmsUp('linux'), true);
  assert.equal(warmsUp('bare'), false);
});

test('the warm-up guest runs to power-off on every tier, well inside its bound', () => {
  assert.ok(fs.existsSync(warmUpGuestFile), `${warmUpGuestFile} (make -C guests)`);
  for (const cpu of ['interp', 'jit', 'wasm'] as const) {
    const outcome = warmUpCpu(cpu, { again: true });
    assert.equal(outcome.kind, 'done', JSON.stringify(outcome));
    if (outcome.kind === 'done') assert.ok(outcome.instructions > 1_000 && outcome.instructions < warmUpInstructionsMax / 10, `${outcome.instructions} instructions`);
  }
});

test('rounds: four on the interpreter, one on the translation tier, or as many as UNDERSTUDY_WARMUP says', () => {
  const rounds = (cpu: 'interp' | 'wasm'): number => {
    const outcome = warmUpCpu(cpu, { again: true });
    assert.equal(outcome.kind, 'done', JSON.stringify(outcome));
    return outcome.kind === 'done' ? outcome.rounds : 0;
  };
  assert.equal(rounds('interp'), warmUpRoundsDefault('interp'));
  assert.equal(warmUpRoundsDefault('interp'), 4);
  assert.equal(rounds('wasm'), 1);
  process.env[warmUpEnvironmentVariable] = '2';
  try {
    assert.equal(rounds('interp'), 2);
    assert.equal(rounds('wasm'), 2);
  } finally {
    delete process.env[warmUpEnvironmentVariable];
  }
});

test('once per process and tier; lockstep mode and UNDERSTUDY_WARMUP=0 skip it', () => {
  warmUpCpu('interp');
  assert.equal(warmUpCpu('interp').kind, 'skipped');
  assert.equal(warmUpCpu('lockstep').kind, 'skipped');
  process.env[warmUpEnvironmentVariable] = '0';
  try {
    assert.deepEqual(warmUpCpu('jit', { again: true }), { kind: 'skipped', reason: `${warmUpEnvironmentVariable}=0` });
  } finally {
    delete process.env[warmUpEnvironmentVariable];
  }
});

test('a missing or broken warm-up guest is harmless: skipped or failed, never thrown, said on the log', () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-warm-up-'));
  try {
    const lines: string[] = [];
    const log = (line: string): void => void lines.push(line);
    assert.equal(warmUpCpu('interp', { file: path.join(directory, 'missing.elf'), again: true, log }).kind, 'skipped');
    assert.deepEqual(lines, []);
    const garbage = path.join(directory, 'garbage.elf');
    fs.writeFileSync(garbage, Buffer.from('\x7fELF not really an ELF file'));
    assert.equal(warmUpCpu('interp', { file: garbage, again: true, log }).kind, 'failed');
    // A program that never powers off: abandoned at the bound.
    const spin = path.join(directory, 'spin.bin');
    fs.writeFileSync(spin, Buffer.from([0x6f, 0x00, 0x00, 0x00])); // jal x0, 0: a jump to itself
    const outcome = warmUpCpu('interp', { file: spin, again: true, log });
    assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /CPU warm-up failed: the warm-up guest stopped at \d+ instructions, still running/);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
