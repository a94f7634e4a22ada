/**
 * Unit tests for WebAssembly units (translator-wasm.ts): blocks compiled into one module go on
 * from one to another inside it, with exact counts, only while chains are on and the next
 * block fits whole in the budget, and leave the last block's slot and exit pc for the
 * trampoline. The tier's own tests (translation-cache.test.ts) compare whole programs with
 * the interpreter; these look at one call of the trampoline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asm } from './encode.js';
import { Ram, ramBaseAddress } from '../memory/ram.js';
import { planBlock } from './translator.js';
import { chainsWord, compileWasmBlocks, exitPcWord, lastSlotWord, WasmBlockTable, type WasmBlockEnvironment } from './translator-wasm.js';
import { hartArenaViews } from './wasm-arena.js';

const base = ramBaseAddress | 0;

/**
 * Two blocks, A at 0 and B at 12: A adds to x1 and jumps to B; B counts x2 down and branches
 * back to A while it is not zero, else falls through to 20.
 */
function twoBlocks(): { ram: Ram; environment: WasmBlockEnvironment; table: WasmBlockTable; slots: number[] } {
  const ram = new Ram(1 << 20, { wasm: true });
  const program = [
    asm.addi(1, 1, 1), // A (0)
    asm.addi(3, 1, 0),
    asm.jal(0, 4), // to B
    asm.addi(2, 2, -1), // B (12)
    asm.bne(2, 0, -16), // back to A
    asm.jal(0, 0), // the end (20)
  ];
  program.forEach((word, index) => (ram.i32[index] = word));
  const arena = ram.arena!;
  const views = hartArenaViews(arena, ram.pages);
  const refuse = (): never => {
    throw new Error('no slow path in these blocks');
  };
  const environment: WasmBlockEnvironment = { arena, words: views.words, imports: { load: refuse, store: refuse, stale: refuse } };
  const table = new WasmBlockTable(arena, 16);
  const plans = [planBlock(ram.u16, 0, 0, base), planBlock(ram.u16, 0, 12, (base + 12) | 0)];
  assert.deepEqual(plans.map((plan) => plan.instructions.length), [3, 2]);
  const compiled = compileWasmBlocks(plans, environment, table);
  const slots = compiled.map((block) => block!.slot);
  return { ram, environment, table, slots };
}

test('a unit goes on from block to block inside it, with exact counts, while the next block fits in the budget', () => {
  const { environment, table, slots } = twoBlocks();
  const words = environment.words;
  const x = new Int32Array(environment.arena.buffer, environment.arena.headerOffset, 33);
  x[2] = 10;
  words[chainsWord] = 1;
  // A, B, then A and B again: 10 instructions; the next A (3) does not fit in 12.
  const retired = table.call(slots[0]!, 0, 12, 0);
  assert.equal(retired, 10);
  assert.equal(x[1], 2, 'A ran twice');
  assert.equal(x[2], 8, 'B ran twice');
  assert.equal(x[3], 2, 'A\'s registers were stored when it went on');
  assert.equal(words[exitPcWord], base, 'left for A');
  assert.equal(words[lastSlotWord], slots[1], 'B ran last');
  // To the end: 8 more rounds of A and B, and B falls through after its last.
  const rest = table.call(slots[0]!, 10, 1000, 0);
  assert.equal(rest, 40);
  assert.equal(x[1], 10);
  assert.equal(x[2], 0);
  assert.equal(words[exitPcWord], (base + 20) | 0, 'B fell through');
  assert.equal(words[lastSlotWord], slots[1]);
});

test('a unit stops at every block when chains are off, and before a block the budget cannot hold whole', () => {
  const { environment, table, slots } = twoBlocks();
  const words = environment.words;
  const x = new Int32Array(environment.arena.buffer, environment.arena.headerOffset, 33);
  x[2] = 10;
  words[chainsWord] = 0;
  assert.equal(table.call(slots[0]!, 0, 1000, 0), 3, 'A alone');
  assert.equal(words[exitPcWord], (base + 12) | 0);
  assert.equal(words[lastSlotWord], slots[0]);
  words[chainsWord] = 1;
  // A (3) and B (2) fit in 6, the next A does not.
  assert.equal(table.call(slots[0]!, 3, 6, 0), 5);
  assert.equal(words[exitPcWord], base);
  assert.equal(words[lastSlotWord], slots[1]);
  // B alone fits in 4, and then A does not.
  assert.equal(table.call(slots[1]!, 8, 4, 0), 2);
  assert.equal(words[lastSlotWord], slots[1]);
  assert.equal(x[1], 2);
  assert.equal(x[2], 8);
});
