/** The host run loop: console backpressure; console input with a clock that skips idle time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Machine } from '../machine/board.js';
import { asm, assemble, li } from '../machine/cpu/encode.js';
import { rawImage } from '../machine/loader/elf.js';
import { VirtualClock } from '../machine/clock.js';
import { BoardMap } from '../machine/board-config.js';
import { BufferConsole, type ConsolePort } from './console.js';
import { consoleBacklogMaxBytes, performDiskRequest, runMachine } from './runner.js';
import { DiskImage } from './disk-image.js';

/** A console whose reader is stuck until the test lets it read. */
class SlowConsole implements ConsolePort {
  backlog = 0;
  written = 0;
  readonly quitRequested = false;
  readonly outputClosed = false;
  readonly hasInput = false;
  readonly inputEnded = true;
  private release: (() => void) | undefined;
  drainRequested: Promise<void>;
  private drainRequestedResolve!: () => void;

  constructor() {
    this.drainRequested = new Promise((resolve) => (this.drainRequestedResolve = resolve));
  }

  write(bytes: Uint8Array): void {
    this.backlog += bytes.length;
    this.written += bytes.length;
  }

  get outputBacklogBytes(): number {
    return this.backlog;
  }

  drain(): Promise<void> {
    if (this.backlog === 0) return Promise.resolve();
    this.drainRequestedResolve();
    return new Promise((resolve) => (this.release = resolve));
  }

  /** The reader catches up. */
  readAll(): void {
    this.backlog = 0;
    this.release?.();
  }

  takeInput(): Uint8Array {
    return new Uint8Array(0);
  }

  inputReady(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}

test('runner: a guest that prints without end pauses while the console reader lags, and goes on when it catches up', async () => {
  // 'A' to the UART without end.
  const program = [...li(5, 0x1000_0000), asm.addi(6, 0, 0x41), asm.sb(6, 5, 0), asm.jal(0, -4)];
  const clock = new VirtualClock();
  const machine = new Machine({ ramBytes: 1 << 20, disks: [] }, clock);
  machine.load(rawImage(assemble(program)));
  const terminal = new SlowConsole();
  const limit = 3 * consoleBacklogMaxBytes;
  const run = runMachine({ machine, clock, console: terminal, disks: new Map(), instructionLimit: limit });

  await Promise.race([
    terminal.drainRequested,
    run.then((outcome) => assert.fail(`the run ended (${outcome.kind}) without waiting for the reader`)),
  ]);
  const paused = machine.retiredInstructions;
  assert.ok(terminal.backlog > consoleBacklogMaxBytes, 'it waited only once the backlog passed the bound');
  assert.ok(terminal.backlog < consoleBacklogMaxBytes + 1_000_000, `the backlog stayed near the bound: ${terminal.backlog}`);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(machine.retiredInstructions, paused, 'the machine did not run while the reader lagged');

  terminal.readAll();
  assert.deepEqual(await run, { kind: 'instruction-limit' });
  assert.equal(machine.retiredInstructions, limit);
  assert.ok(terminal.written > consoleBacklogMaxBytes, 'everything was written in the end');
});

test('runner: with the virtual clock, input typed while the guest idles with a timer always ahead reaches it', async () => {
  // M-mode, interrupts off but MTIE on, so that WFI wakes when mtime passes mtimecmp: set the
  // timer 1000 ticks ahead, WFI, look at the UART's data-ready bit, and again; on input, pass.
  // Idle with a deadline ahead, the virtual clock skips to it at once: the run loop never
  // waits, and must still let the host's events (here: the typed byte) in.
  const setup = [...li(6, BoardMap.clint + 0xbff8), ...li(7, BoardMap.clint + 0x4000), ...li(10, BoardMap.uart), ...li(5, 0x80), asm.csrrs(0, 0x304, 5)];
  const loop = [asm.lw(28, 6, 0), asm.lw(29, 6, 4), asm.addi(28, 28, 1000), asm.sw(29, 7, 4), asm.sw(28, 7, 0), asm.wfi(), asm.lbu(30, 10, 5), asm.andi(30, 30, 1)];
  const pass = [...li(5, BoardMap.test), ...li(6, 0x5555), asm.sw(6, 5, 0)];
  const clock = new VirtualClock();
  const machine = new Machine({ ramBytes: 1 << 20, disks: [] }, clock);
  machine.load(rawImage(assemble([...setup, ...loop, asm.beq(30, 0, -4 * loop.length), ...pass])));
  const terminal = new BufferConsole('', { inputEnded: false });
  // The byte arrives as stdin's would, from the host's event loop: after five turns of it, so
  // that the loop must yield again and again, not just once when a slow slice (a garbage
  // collection, a compilation) happens to let one turn through.
  const typeAfterTurns = (turns: number): void => void setImmediate(() => (turns === 0 ? terminal.type('x') : typeAfterTurns(turns - 1)));
  typeAfterTurns(5);
  const outcome = await runMachine({ machine, clock, console: terminal, disks: new Map(), instructionLimit: 10_000_000 });
  assert.deepEqual(outcome, { kind: 'poweroff', status: 0 }, `the guest saw the input before ${machine.retiredInstructions} instructions`);
});

test('runner: a write the write-back disk answered is written with no completion; if it fails, the next flush of that disk fails', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-runner-'));
  try {
    const file = path.join(dir, 'disk.img');
    fs.writeFileSync(file, new Uint8Array(4096));
    const failedWrites = new Set<number>();
    const writable = new DiskImage(file, false);
    const data = new Uint8Array(512).fill(0x5a);
    assert.equal(performDiskRequest(writable, { op: 'write', slot: 7, requestId: 1, offsetBytes: 512, data, completed: true }, failedWrites), undefined);
    assert.deepEqual(performDiskRequest(writable, { op: 'flush', slot: 7, requestId: 2 }, failedWrites), { kind: 'disk-completion', slot: 7, requestId: 2, status: 'ok' });
    assert.deepEqual(fs.readFileSync(file).subarray(512, 1024), Buffer.from(data));
    writable.close();
    // The host refuses a write the guest was told was done (here: the image is read-only).
    const refusing = new DiskImage(file, true);
    assert.equal(performDiskRequest(refusing, { op: 'write', slot: 7, requestId: 3, offsetBytes: 0, data, completed: true }, failedWrites), undefined);
    assert.deepEqual([...failedWrites], [7]);
    assert.deepEqual(performDiskRequest(refusing, { op: 'flush', slot: 6, requestId: 4 }, failedWrites), { kind: 'disk-completion', slot: 6, requestId: 4, status: 'ok' }, 'another disk is not concerned');
    assert.deepEqual(performDiskRequest(refusing, { op: 'flush', slot: 7, requestId: 5 }, failedWrites), { kind: 'disk-completion', slot: 7, requestId: 5, status: 'io-error' });
    assert.deepEqual(performDiskRequest(refusing, { op: 'flush', slot: 7, requestId: 6 }, failedWrites), { kind: 'disk-completion', slot: 7, requestId: 6, status: 'ok' }, 'reported once');
    refusing.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
