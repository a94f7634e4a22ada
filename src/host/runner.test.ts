/** The host run loop: console backpressure. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine } from '../machine/board.js';
import { asm, assemble, li } from '../machine/cpu/encode.js';
import { rawImage } from '../machine/loader/elf.js';
import { VirtualClock } from '../machine/clock.js';
import type { ConsolePort } from './console.js';
import { consoleBacklogMaxBytes, runMachine } from './runner.js';

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
