/**
 * Differential fuzzing of the CPU against QEMU: random instruction sequences
 * (test/support/isa-fuzz.ts) built into bare-metal programs, run on understudy and on
 * `qemu-system-riscv32 -icount shift=0`, must print the same registers, data checksums, traps
 * and instruction counts, block for block; so must the same program on understudy moved to a
 * fresh machine by save and restore every few thousand instructions.
 *
 * ISA_FUZZ_SEEDS (default 40) sets how many programs run; ISA_FUZZ_FIRST_SEED where they
 * start. A failing seed is printed with the block that differs and its instructions, and
 * replays exactly with ISA_FUZZ_FIRST_SEED=<seed> ISA_FUZZ_SEEDS=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { haveQemu, repoRoot, runElf, runOnQemu } from './helpers.js';
import { defaultBlockCount, generateProgram, type FuzzProgram } from './support/isa-fuzz.js';
import { Machine } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { readKernel } from '../src/host/guest-image.js';
import { Prng } from '../src/simulator/prng.js';

const seeds = Number(process.env['ISA_FUZZ_SEEDS'] ?? 40);
const firstSeed = Number(process.env['ISA_FUZZ_FIRST_SEED'] ?? 1);
const cc = 'riscv64-unknown-elf-gcc';
const linkScript = path.join(repoRoot, 'guests/lib/link.ld');

function build(program: FuzzProgram, directory: string): string {
  const source = path.join(directory, `fuzz-${program.seed}.S`);
  const elf = path.join(directory, `fuzz-${program.seed}.elf`);
  fs.writeFileSync(source, program.source);
  const result = spawnSync(
    cc,
    ['-march=rv32imafdc_zicsr_zifencei', '-mabi=ilp32', '-nostdlib', '-static', '-mno-relax', '-T', linkScript, '-Wl,--no-warn-rwx-segments', '-o', elf, source],
    { encoding: 'utf8' },
  );
  assert.equal(result.status, 0, `${cc} failed on seed ${program.seed}:\n${result.stderr}`);
  return elf;
}

/** The first line where two outputs differ, with the block it belongs to. */
function firstDifference(ours: string[], reference: string[]): { line: number; block: number } | undefined {
  let block = -1;
  for (let index = 0; index < Math.max(ours.length, reference.length); index++) {
    const match = /^block ([0-9a-f]+)$/.exec(reference[index] ?? '');
    if (match !== null) block = parseInt(match[1]!, 16);
    if (ours[index] !== reference[index]) return { line: index, block };
  }
  return undefined;
}

test('the fuzzer makes the same program from the same seed, and different ones from others', () => {
  assert.equal(generateProgram(7).source, generateProgram(7).source);
  assert.notEqual(generateProgram(7).source, generateProgram(8).source);
});

test(`random instruction sequences (${seeds} programs from seed ${firstSeed}): the same registers, memory, traps and counts as QEMU`, { skip: haveQemu() ? false : 'qemu-system-riscv32 is not installed', timeout: 20 * 60_000 }, async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-isa-fuzz-'));
  let blocksCompared = 0;
  let traps = 0;
  let translatedExits = 0;
  try {
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const program = generateProgram(seed);
      const elf = build(program, directory);
      // The interpreter is the reference tier.
      const ours = await runElf(elf, { instructionLimit: 50_000_000, cpu: 'interp' });
      // And with the translation tier, checked against the interpreter after every translated block.
      const translated = await runElf(elf, { instructionLimit: 50_000_000, cpu: 'lockstep' });
      translatedExits += translated.machine.lockstepComparisons;
      // And with WebAssembly blocks (--cpu wasm), checked the same way.
      const wasm = await runElf(elf, { instructionLimit: 50_000_000, cpu: 'lockstep', lockstepBackend: 'wasm' });
      translatedExits += wasm.machine.lockstepComparisons;
      const reference = runOnQemu(elf);
      assert.equal(reference.status, 0, `QEMU failed on seed ${seed}:\n${reference.output.slice(-2000)}`);
      assert.deepEqual(ours.outcome, { kind: 'poweroff', status: 0 }, `understudy did not finish seed ${seed}:\n${ours.output.slice(-2000)}`);
      const referenceLines = reference.output.split('\n');
      // The same program again, moved to a fresh machine through save and restore every few
      // thousand instructions (as a backup is started from a primary's state): TLBs, the LR
      // reservation, decoded code and every CSR must survive the trip.
      const hopping = runHopping(elf, seed);
      for (const [who, output] of [['understudy', ours.output], ['understudy with the translation tier (in lockstep)', translated.output], ['understudy with WebAssembly blocks (in lockstep)', wasm.output], ['understudy, saved and restored every few thousand instructions,', hopping]] as const) {
        const ourLines = output.split('\n');
        const difference = firstDifference(ourLines, referenceLines);
        if (difference === undefined) continue;
        const { line, block } = difference;
        assert.fail(
          `seed ${seed}, block ${block}: ${who} printed ${JSON.stringify(ourLines[line])}, QEMU ${JSON.stringify(referenceLines[line])}\n` +
            `(replay: ISA_FUZZ_FIRST_SEED=${seed} ISA_FUZZ_SEEDS=1; the program is ${path.join(directory, `fuzz-${seed}.S`)})\n` +
            `the block's instructions:\n${program.blocks[block] ?? '(before the first block)'}`,
        );
      }
      blocksCompared += referenceLines.filter((text) => text.startsWith('block ')).length;
      for (const text of referenceLines) {
        const match = /^traps=([0-9a-f]+) /.exec(text);
        if (match !== null) traps += parseInt(match[1]!, 16);
      }
    }
    t.diagnostic(`${blocksCompared} blocks compared, ${traps} traps taken, ${translatedExits} exits from translated code compared`);
    assert.ok(translatedExits > 0, 'the tier ran translated code');
    assert.equal(blocksCompared, seeds * defaultBlockCount, 'every block printed on both');
    assert.ok(traps > 0, 'the programs took traps');
    fs.rmSync(directory, { recursive: true, force: true });
  } catch (error) {
    // Keep the programs for a failing seed; say where they are.
    t.diagnostic(`programs kept in ${directory}`);
    throw error;
  }
});

/**
 * Runs a fuzz program, moving it to a fresh machine (save, restore) after every run of a
 * seeded random 1 to 12,000 instructions; returns its console output.
 */
function runHopping(elf: string, seed: number): string {
  const random = new Prng(seed);
  const config = { ramBytes: 8 * 1024 * 1024, disks: [] };
  let machine = new Machine(config, new VirtualClock());
  machine.load(readKernel(elf));
  const console: Uint8Array[] = [];
  for (let hops = 0; machine.power === undefined; hops++) {
    if (hops > 100_000) assert.fail(`seed ${seed}: the hopping run did not finish`);
    machine.run(random.int(1, 12_000));
    for (const output of machine.takeOutputs()) if (output.kind === 'console-output') console.push(output.bytes);
    const snapshot = machine.save();
    machine = new Machine(config, new VirtualClock());
    machine.restore(snapshot);
  }
  assert.deepEqual(machine.power, { kind: 'poweroff', status: 0 });
  return Buffer.concat(console).toString('latin1');
}
