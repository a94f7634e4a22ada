/**
 * The FPU library (src/machine/cpu/fpu/) against QEMU's RISC-V FPU, bit for bit: every
 * operation of F and D on seeded operand vectors biased to the edges, under every rounding
 * mode, static and dynamic; results and fflags must agree line for line
 * (test/support/fpu-program.ts makes the program and the expected lines).
 *
 * FPU_QEMU_SEEDS (default 8) sets how many programs run, FPU_QEMU_FIRST_SEED where they start,
 * FPU_QEMU_VECTORS (default 300) how many operand vectors each operation gets. A difference
 * prints the operation, operands and rounding mode; it replays with
 * FPU_QEMU_FIRST_SEED=<seed> FPU_QEMU_SEEDS=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { haveQemu, qemuBinary, repoRoot } from './helpers.js';
import { describeLine, expectedLines, fpuOps, generateFpuProgram, type FpuProgram } from './support/fpu-program.js';

const seeds = Number(process.env['FPU_QEMU_SEEDS'] ?? 8);
const firstSeed = Number(process.env['FPU_QEMU_FIRST_SEED'] ?? 1);
const vectorsPerOp = Number(process.env['FPU_QEMU_VECTORS'] ?? 300);
const cc = 'riscv64-unknown-elf-gcc';
const linkScript = path.join(repoRoot, 'guests/lib/link.ld');

function haveCompiler(): boolean {
  return spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0;
}

const skip = !haveQemu() ? `${qemuBinary} is not installed` : !haveCompiler() ? `${cc} is not installed` : false;

function build(program: FpuProgram, directory: string): string {
  const source = path.join(directory, `fpu-${program.seed}.S`);
  const elf = path.join(directory, `fpu-${program.seed}.elf`);
  fs.writeFileSync(source, program.source);
  const result = spawnSync(
    cc,
    ['-march=rv32imafd_zicsr', '-mabi=ilp32', '-nostdlib', '-static', '-mno-relax', '-T', linkScript, '-Wl,--no-warn-rwx-segments', '-o', elf, source],
    { encoding: 'utf8' },
  );
  assert.equal(result.status, 0, `${cc} failed on seed ${program.seed}:\n${result.stderr}`);
  return elf;
}

/**
 * Runs on QEMU's generic rv32 CPU: F and D on (unlike helpers' qemuCpu, shaped like our
 * RV32IMA). The console goes to a file: through a pipe QEMU drops bytes of a long output.
 */
function runOnQemu(elf: string): { status: number | null; output: string } {
  const console = `${elf}.out`;
  const result = spawnSync(
    qemuBinary,
    ['-M', 'virt', '-bios', 'none', '-display', 'none', '-monitor', 'none', '-serial', `file:${console}`, '-cpu', 'rv32', '-kernel', elf],
    { timeout: 120_000, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return { status: result.status, output: fs.existsSync(console) ? fs.readFileSync(console, 'utf8') : result.stderr };
}

test('the FPU program is the same for the same seed', () => {
  assert.equal(generateFpuProgram(3, 4).source, generateFpuProgram(3, 4).source);
  assert.notEqual(generateFpuProgram(3, 4).source, generateFpuProgram(4, 4).source);
});

test(`F and D on edge operands (${seeds} programs of ${vectorsPerOp} vectors an operation from seed ${firstSeed}): the same bits and fflags as QEMU`, { skip, timeout: 60 * 60_000 }, (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-fpu-qemu-'));
  let compared = 0;
  const mnemonics = new Set<string>();
  const flagCounts = [0, 0, 0, 0, 0]; // NX UF OF DZ NV
  try {
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const program = generateFpuProgram(seed, vectorsPerOp);
      const elf = build(program, directory);
      const reference = runOnQemu(elf);
      assert.equal(reference.status, 0, `QEMU failed on seed ${seed}:\n${reference.output.slice(-2000)}`);
      const referenceLines = reference.output.replace(/\r/g, '').split('\n').filter((line) => line !== '');
      const expected = expectedLines(program);
      assert.equal(referenceLines.length, expected.length, `seed ${seed}: QEMU printed ${referenceLines.length} lines, we expect ${expected.length}`);
      expected.forEach((line, index) => {
        if (line.text === referenceLines[index]) return;
        assert.fail(
          `seed ${seed}, line ${index}: ${describeLine(line)}: we compute ${line.text}, QEMU ${referenceLines[index]!} ` +
            `(value, fflags NV=10 DZ=08 OF=04 UF=02 NX=01)\n(replay: FPU_QEMU_FIRST_SEED=${seed} FPU_QEMU_SEEDS=1 FPU_QEMU_VECTORS=${vectorsPerOp})`,
        );
      });
      compared += expected.length;
      for (const line of expected) {
        mnemonics.add(line.op.mnemonic);
        const flags = parseInt(line.text.split(' ')[1]!, 16);
        for (let bit = 0; bit < 5; bit++) if ((flags & (1 << bit)) !== 0) flagCounts[bit]!++;
      }
    }
    t.diagnostic(`${compared} results compared with QEMU; flags raised: NX ${flagCounts[0]}, UF ${flagCounts[1]}, OF ${flagCounts[2]}, DZ ${flagCounts[3]}, NV ${flagCounts[4]}`);
    // The vectors reach every exception: otherwise the edges are not where they should be.
    assert.ok(flagCounts.every((count) => count > 0), 'every exception flag was raised somewhere');
    assert.equal(mnemonics.size, new Set(fpuOps.map((op) => op.mnemonic)).size, 'every operation ran');
    fs.rmSync(directory, { recursive: true, force: true });
  } catch (error) {
    t.diagnostic(`programs kept in ${directory}`);
    throw error;
  }
});
