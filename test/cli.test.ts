/**
 * The command line from the outside: `node bin/understudy.js ...` as a user runs it.
 *
 * Bad input must end in a non-zero status and exactly one line on stderr that names the
 * problem, never a stack trace; good input runs guests and maps their outcome to the status.
 */
import { after, suite, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/). */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repoRoot, 'bin/understudy.js');
const helloElf = path.join(repoRoot, 'guests/build/hello.elf');

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-cli-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in a child process with stdin closed; resolves when it exits. */
function understudy(...args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Bad input: non-zero status, one stderr line matching `problem`, no stack trace, no output. */
function assertRejected(result: CliResult, problem: RegExp): void {
  const context = `status ${result.status}\nstderr:\n${result.stderr}\nstdout:\n${result.stdout}`;
  assert.notEqual(result.status, 0, context);
  assert.notEqual(result.status, null, `killed: ${context}`);
  const lines = result.stderr.split('\n').filter((line) => line.length > 0);
  assert.equal(lines.length, 1, `exactly one line on stderr\n${context}`);
  assert.match(lines[0]!, /^understudy: /, context);
  assert.match(lines[0]!, problem, context);
  assert.ok(!/^\s+at /m.test(result.stderr), `no stack trace\n${context}`);
  assert.equal(result.stdout, '', context);
}

function scratchFile(name: string, bytes: Uint8Array): string {
  const file = path.join(scratch, name);
  fs.writeFileSync(file, bytes);
  return file;
}

// ---------------------------------------------------------------------------------------------
// Hand-assembled RV32I (RISC-V unprivileged spec, chapter 2 base formats).

const x = { zero: 0, t0: 5, t1: 6 } as const;
const lui = (rd: number, upper20: number): number => ((upper20 << 12) | (rd << 7) | 0x37) >>> 0;
const addi = (rd: number, rs1: number, imm12: number): number => (((imm12 & 0xfff) << 20) | (rs1 << 15) | (0 << 12) | (rd << 7) | 0x13) >>> 0;
const sw = (rs2: number, rs1: number, imm12: number): number =>
  ((((imm12 >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (2 << 12) | ((imm12 & 0x1f) << 7) | 0x23) >>> 0;
const sb = (rs2: number, rs1: number, imm12: number): number =>
  ((((imm12 >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (0 << 12) | ((imm12 & 0x1f) << 7) | 0x23) >>> 0;
/** jal zero, -4: back one instruction. */
const jalBack = 0xffdf_f06f;
/** jal rd, 0: jump to itself. */
const jalSelf = (rd: number): number => ((rd << 7) | 0x6f) >>> 0;

function words(...instructions: number[]): Uint8Array {
  const bytes = new Uint8Array(instructions.length * 4);
  const view = new DataView(bytes.buffer);
  instructions.forEach((instruction, i) => view.setUint32(i * 4, instruction, true));
  return bytes;
}

/** A raw image (loaded at 0x80000000) that fails through the sifive,test0 device with `code`. */
function exitImage(code: number): Uint8Array {
  const command = ((code << 16) | 0x3333) >>> 0;
  const upper = (command + 0x800) >>> 12; // lui/addi split with addi's sign extension
  const lower = command - upper * 4096;
  return words(
    lui(x.t0, 0x100), //            t0 = 0x0010_0000, the test device
    lui(x.t1, upper), //            t1 = command
    addi(x.t1, x.t1, lower),
    sw(x.t1, x.t0, 0), //           sw t1, 0(t0)
    jalSelf(x.zero), //             j .  (never reached)
  );
}

test('cli: the hand-assembled words are the standard encodings', () => {
  // Cross-checked with `riscv64-unknown-elf-as -march=rv32i`: lui t0,0x100; lui t1,0x73;
  // addi t1,t1,0x333; sw t1,0(t0); j .
  assert.deepEqual(Array.from(new Uint32Array(exitImage(7).buffer)), [0x0010_02b7, 0x0007_3337, 0x3333_0313, 0x0062_a023, 0x0000_006f]);
});

/** A minimal ELF32 RISC-V executable with one PT_LOAD segment of `code` at `address`. */
function riscvElf(address: number, code: Uint8Array, options: { elfClass?: number } = {}): Uint8Array {
  const headerBytes = 52, programHeaderBytes = 32;
  const bytes = new Uint8Array(headerBytes + programHeaderBytes + code.length);
  const view = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, options.elfClass ?? 1, 1, 1]);
  view.setUint16(16, 2, true); // ET_EXEC
  view.setUint16(18, 243, true); // EM_RISCV
  view.setUint32(20, 1, true);
  view.setUint32(24, address, true);
  view.setUint32(28, headerBytes, true);
  view.setUint16(40, headerBytes, true);
  view.setUint16(42, programHeaderBytes, true);
  view.setUint16(44, 1, true);
  view.setUint32(headerBytes, 1, true); // PT_LOAD
  view.setUint32(headerBytes + 4, headerBytes + programHeaderBytes, true);
  view.setUint32(headerBytes + 8, address, true);
  view.setUint32(headerBytes + 12, address, true);
  view.setUint32(headerBytes + 16, code.length, true);
  view.setUint32(headerBytes + 20, code.length, true);
  view.setUint32(headerBytes + 24, 5, true);
  bytes.set(code, headerBytes + programHeaderBytes);
  return bytes;
}

/** The start of an ELF64 header (class 2) for RISC-V: what an RV64 toolchain makes. */
function elf64Header(): Uint8Array {
  const bytes = new Uint8Array(64);
  const view = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  view.setUint16(16, 2, true);
  view.setUint16(18, 243, true);
  view.setUint32(20, 1, true);
  return bytes;
}

/** A raw image that spins forever: `j .` at 0x80000000. */
const loopImage = scratchFile('loop.bin', words(jalSelf(x.zero)));

// Each test spawns its own process, so they run side by side.
suite('understudy command line', { concurrency: 4 }, () => {
  // ---------------------------------------------------------------------------------------------
  // Bad input.

  test('cli: kernel file missing', async () => {
    assertRejected(await understudy('run', '--kernel', path.join(scratch, 'no-such-kernel.elf')), /cannot read kernel .*no-such-kernel\.elf: no such file/);
  });

  test('cli: kernel is a directory', async () => {
    assertRejected(await understudy('run', '--kernel', scratch), /cannot read kernel .*: is a directory/);
  });

  test('cli: kernel file is empty', async () => {
    assertRejected(await understudy('run', '--kernel', scratchFile('empty.bin', new Uint8Array(0))), /kernel .*empty\.bin is empty/);
  });

  test('cli: a 64-bit ELF', async () => {
    assertRejected(await understudy('run', '--kernel', scratchFile('rv64.elf', elf64Header())), /rv64\.elf: not an RV32 ELF: class 2 \(64-bit\)/);
  });

  test('cli: an x86-64 executable (/bin/true)', { skip: fs.existsSync('/bin/true') ? false : 'no /bin/true' }, async () => {
    assertRejected(await understudy('run', '--kernel', '/bin/true'), /not an RV32 ELF|not a RISC-V ELF/);
  });

  test('cli: a RISC-V ELF whose segment lies outside RAM', async () => {
    const below = scratchFile('low.elf', riscvElf(0x1000, words(jalSelf(x.zero))));
    assertRejected(await understudy('run', '--kernel', below), /low\.elf: segment at 0x1000\.\.0x1004 lies outside RAM/);
    // Past the end of a small RAM.
    const above = scratchFile('high.elf', riscvElf(0x8010_0000, words(jalSelf(x.zero))));
    assertRejected(await understudy('run', '--kernel', above, '--memory', '1M'), /high\.elf: segment at 0x80100000\.\.0x80100004 lies outside RAM/);
  });

  test('cli: a raw image larger than RAM', async () => {
    const big = scratchFile('big.bin', new Uint8Array((1 << 20) + 4));
    assertRejected(await understudy('run', '--kernel', big, '--memory', '1M'), /lies outside RAM/);
  });

  test('cli: a corrupt RISC-V ELF', async () => {
    const truncated = riscvElf(0x8000_0000, words(jalSelf(x.zero))).subarray(0, 60);
    assertRejected(await understudy('run', '--kernel', scratchFile('cut.elf', truncated)), /cut\.elf: ELF program headers run past the end of the file/);
  });

  test('cli: --memory out of range, not a multiple of 4 KiB, or garbage', async () => {
    // The real limits come from src/machine/memory/ram.ts: ramBytesMin = 1 MiB.
    const cases: [string, RegExp][] = [
      ['5G', /--memory 5G is out of range: between 1 MiB and \d+ MiB/],
      ['512K', /--memory 512K is out of range: between 1 MiB and \d+ MiB/],
      // Without a suffix, MiB (as QEMU's -m): 0.5 is half a MiB.
      ['0.5', /--memory 0.5 is out of range: between 1 MiB and \d+ MiB/],
      ['4096', /--memory 4096 is out of range/],
      ['1025K', /--memory 1025K: must be a multiple of 4 KiB/],
      ['1.0000001M', /--memory 1.0000001M: must be a multiple of 4 KiB/],
      ['lots', /--memory: cannot read "lots" as a size/],
      ['-1G', /--memory: cannot read "-1G" as a size/],
    ];
    const results = await Promise.all(cases.map(([size]) => understudy('run', '--kernel', helloElf, '--memory', size)));
    results.forEach((result, i) => assertRejected(result, cases[i]![1]));
  });

  test('cli: the smallest RAM is accepted', async () => {
    const result = await understudy('run', '--kernel', scratchFile('exit3.bin', exitImage(3)), '--memory', '1M');
    assert.equal(result.status, 3, result.stderr);
  });

  test('cli: --memory without a suffix is MiB, and fractions of a unit work (as QEMU -m)', async () => {
    const big = scratchFile('big2.bin', new Uint8Array((1 << 20) + 4));
    // 1 means 1 MiB: an image just over 1 MiB does not fit; at 1.5 (MiB) it does.
    assertRejected(await understudy('run', '--kernel', big, '--memory', '1'), /lies outside RAM/);
    const exit3 = scratchFile('exit3b.bin', exitImage(3));
    for (const size of ['1.5', '0.5G', '128']) {
      const result = await understudy('run', '--kernel', exit3, '--memory', size);
      assert.equal(result.status, 3, `--memory ${size}: ${result.stderr}`);
    }
  });

  test('cli: a kernel that is not an ELF file is loaded as a raw image, and the user is told', async () => {
    const result = await understudy('run', '--kernel', scratchFile('exit5.bin', exitImage(5)));
    assert.equal(result.status, 5, result.stderr);
    assert.match(result.stderr, /^understudy: kernel .*exit5\.bin is not an ELF file: loading it as a raw image at 0x80000000, entered there$/m);
    const elf = await understudy('run', '--kernel', helloElf);
    assert.doesNotMatch(elf.stderr, /raw image/);
  });

  test('cli: --epoch out of range, zero or negative: one message that states the range', async () => {
    const results = await Promise.all(['0', '1', '-5', '2.5', '1e9', 'lots'].map((epoch) => understudy('pair', '--kernel', helloElf, '--epoch', epoch)));
    results.forEach((result) => assertRejected(result, /^understudy: --epoch must be a whole number of instructions from 1000 to 100000000, not "[^"]+"$/));
    assert.match(results[2]!.stderr, /not "-5"/);
    const help = await understudy('pair', '--help');
    assert.match(help.stdout, /--epoch N +instructions per epoch, 1000 to 100000000/);
  });

  test('cli: unknown option', async () => {
    assertRejected(await understudy('run', '--kernel', helloElf, '--bogus'), /Unknown option '--bogus'/);
  });

  test('cli: unexpected positional argument', async () => {
    assertRejected(await understudy('run', '--kernel', helloElf, 'extra'), /Unexpected argument 'extra'/);
  });

  test('cli: unknown command', async () => {
    assertRejected(await understudy('frobnicate'), /unknown command "frobnicate"/);
  });

  test('cli: run without --kernel', async () => {
    assertRejected(await understudy('run', '--memory', '64M'), /run needs --kernel FILE/);
  });

  test('cli: --kernel without a value', async () => {
    assertRejected(await understudy('run', '--kernel'), /--kernel/);
  });

  test('cli: --clock bogus', async () => {
    assertRejected(await understudy('run', '--kernel', helloElf, '--clock', 'bogus'), /--clock must be host or virtual, not "bogus"/);
  });

  test('cli: --timeout and --max-instructions need positive numbers', async () => {
    const cases: [string, RegExp][] = [
      ['--timeout=-1', /--timeout needs a positive number, not "-1"/],
      ['--timeout=1e400', /--timeout needs a positive number/],
      ['--max-instructions=0', /--max-instructions needs a positive whole number, not "0"/],
      ['--max-instructions=abc', /--max-instructions needs a positive whole number/],
      ['--max-instructions=2.5', /--max-instructions needs a positive whole number/],
      ['--max-instructions=1e30', /--max-instructions needs a positive whole number/],
    ];
    const results = await Promise.all(cases.map(([option]) => understudy('run', '--kernel', helloElf, option)));
    results.forEach((result, i) => assertRejected(result, cases[i]![1]));
    // Without "=", a negative number is still taken as the option's value, and judged by it.
    assertRejected(await understudy('run', '--kernel', helloElf, '--timeout', '-1'), /--timeout needs a positive number, not "-1"/);
  });

  // ---------------------------------------------------------------------------------------------
  // Good input.

  test('cli: help prints the usage and exits 0', async () => {
    for (const command of ['help', '-h']) {
      const result = await understudy(command);
      assert.equal(result.status, 0, command);
      assert.match(result.stdout, /^usage: understudy <command>/, command);
      assert.match(result.stdout, /^ {2}pair +run a guest on a primary and a backup/m);
      assert.match(result.stdout, /understudy <command> --help shows a command's options/);
      assert.equal(result.stderr, '');
    }
  });

  test('cli: <command> --help prints that command\'s usage and does nothing else', async () => {
    const commands = ['run', 'pair', 'primary', 'backup', 'status', 'simulate', 'demo'];
    const results = await Promise.all(commands.map((command) => understudy(command, '--help')));
    results.forEach((result, i) => {
      const command = commands[i]!;
      assert.equal(result.status, 0, `${command} --help: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^usage: understudy ${command}\\b`), command);
      assert.equal(result.stderr, '', command);
    });
    assert.match(results[0]!.stdout, /--max-instructions N/);
    assert.match(results[2]!.stdout, /--wait-for-backup/);
    assert.match(results[3]!.stdout, /--connect HOST:PORT/);
    // Also after other options, and through `help <command>`.
    const late = await understudy('run', '--kernel', helloElf, '--help');
    assert.equal(late.stdout, results[0]!.stdout);
    const viaHelp = await understudy('help', 'pair');
    assert.equal(viaHelp.stdout, results[1]!.stdout);
    assertRejected(await understudy('help', 'frobnicate'), /no command "frobnicate"/);
  });

  test('cli: --version and version print the version', async () => {
    const packageVersion = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    for (const form of ['--version', 'version', '-V']) {
      const result = await understudy(form);
      assert.equal(result.status, 0, form);
      assert.equal(result.stdout, `understudy ${packageVersion}\n`, form);
    }
  });

  test('cli: no command prints the usage and fails', async () => {
    const result = await understudy();
    assert.equal(result.status, 2);
    assert.match(result.stdout, /^usage: understudy/);
  });

  test('cli: run --kernel guests/build/hello.elf passes', async () => {
    assert.ok(fs.existsSync(helloElf), `${helloElf} is missing: run make -C guests`);
    const result = await understudy('run', '--kernel', 'guests/build/hello.elf');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /PASS hello/);
  });

  test('cli: hello passes with the virtual clock too', async () => {
    const result = await understudy('run', '--kernel', helloElf, '--clock', 'virtual');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /PASS hello/);
  });

  test('cli: a guest failing through the exit device exits with its code', async () => {
    const result = await understudy('run', '--kernel', scratchFile('exit7.bin', exitImage(7)));
    assert.equal(result.status, 7, result.stderr);
    assert.equal(result.stdout, '');
    assert.ok(!/^\s+at /m.test(result.stderr));
  });

  test('cli: a failure code that is a multiple of 256 does not exit 0', async () => {
    const result = await understudy('run', '--kernel', scratchFile('exit256.bin', exitImage(256)));
    assert.equal(result.status, 1, result.stderr);
    const wrapped = await understudy('run', '--kernel', scratchFile('exit257.bin', exitImage(257)));
    assert.equal(wrapped.status, 1, 'the shell sees the code mod 256');
  });

  test('cli: --max-instructions stops an endless loop with status 125', async () => {
    const result = await understudy('run', '--kernel', loopImage, '--max-instructions', '1000');
    assert.equal(result.status, 125, result.stderr);
    assert.match(result.stderr, /instruction limit reached/);
    assert.ok(!/^\s+at /m.test(result.stderr));
  });

  test('cli: a console reader that goes away (`| head`) ends the run with status 141, quietly', async () => {
    // 'A' to the UART without end.
    const spam = scratchFile('spam.bin', words(lui(x.t0, 0x1_0000), addi(x.t1, x.zero, 0x41), sb(x.t1, x.t0, 0), jalBack));
    const child = spawn(process.execPath, [cli, 'run', '--kernel', spam], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let received = '';
    child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
      received += chunk;
      if (received.length >= 100) child.stdout.destroy(); // like head -c 100
    });
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    assert.match(received, /^A{100}/);
    assert.equal(status, 141, stderr);
    assert.match(stderr, /understudy: the console's output was closed/);
    assert.ok(!/^\s+at /m.test(stderr), stderr);
  });

  test('cli: --timeout 1 stops an endless loop with status 124', async () => {
    const started = Date.now();
    const result = await understudy('run', '--kernel', loopImage, '--timeout', '1');
    const elapsedMs = Date.now() - started;
    assert.equal(result.status, 124, result.stderr);
    assert.match(result.stderr, /timed out after 1 s/);
    assert.ok(elapsedMs >= 1000 && elapsedMs < 10_000, `took ${elapsedMs} ms`);
  });
});
