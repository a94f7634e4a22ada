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
import { hartArenaViews, type HartArenaViews } from './wasm-arena.js';
import { Priv } from './csr.js';
import { fetchTlbContext, tlbEntries } from './mmu.js';

const base = ramBaseAddress | 0;

/** The hart's arena views, an environment for blocks without slow paths, and a table, over `ram`. */
function blocksOf(ram: Ram): { environment: WasmBlockEnvironment; table: WasmBlockTable; views: HartArenaViews } {
  const arena = ram.arena!;
  const views = hartArenaViews(arena, ram.pages);
  const refuse = (): never => {
    throw new Error('no slow path in these blocks');
  };
  return { environment: { arena, words: views.words, imports: { load: refuse, store: refuse, stale: refuse } }, table: new WasmBlockTable(arena, 16), views };
}

/**
 * Two blocks, A at 0 and B at 12: A adds to x1 and jumps to B; B counts x2 down and branches
 * back to A while it is not zero, else falls through to 20.
 */
function twoBlocks(): { environment: WasmBlockEnvironment; table: WasmBlockTable; slots: number[]; x: Int32Array } {
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
  const { environment, table, views } = blocksOf(ram);
  const plans = [planBlock(ram.u16, 0, 0, base), planBlock(ram.u16, 0, 12, (base + 12) | 0)];
  assert.deepEqual(plans.map((plan) => plan.instructions.length), [3, 2]);
  const compiled = compileWasmBlocks(plans, base >>> 12, 0, environment, table);
  const slots = compiled.map((block) => block!.slot);
  return { environment, table, slots, x: views.x };
}

test('a unit goes on from block to block inside it, with exact counts, while the next block fits in the budget', () => {
  const { environment, table, slots, x } = twoBlocks();
  const words = environment.words;
  x[2] = 10;
  words[chainsWord] = 1;
  // A, B, then A and B again: 10 instructions; the next A (3) does not fit in 12.
  const retired = table.call(slots[0]!, 0, 12, 0, 0);
  assert.equal(retired, 10);
  assert.equal(x[1], 2, 'A ran twice');
  assert.equal(x[2], 8, 'B ran twice');
  assert.equal(x[3], 2, 'A\'s registers were stored when it went on');
  assert.equal(words[exitPcWord], base, 'left for A');
  assert.equal(words[lastSlotWord], slots[1], 'B ran last');
  // To the end: 8 more rounds of A and B, and B falls through after its last.
  const rest = table.call(slots[0]!, 10, 1000, 0, 0);
  assert.equal(rest, 40);
  assert.equal(x[1], 10);
  assert.equal(x[2], 0);
  assert.equal(words[exitPcWord], (base + 20) | 0, 'B fell through');
  assert.equal(words[lastSlotWord], slots[1]);
});

test('a unit stops at every block when chains are off, and before a block the budget cannot hold whole', () => {
  const { environment, table, slots, x } = twoBlocks();
  const words = environment.words;
  x[2] = 10;
  words[chainsWord] = 0;
  assert.equal(table.call(slots[0]!, 0, 1000, 0, 0), 3, 'A alone');
  assert.equal(words[exitPcWord], (base + 12) | 0);
  assert.equal(words[lastSlotWord], slots[0]);
  words[chainsWord] = 1;
  // A (3) and B (2) fit in 6, the next A does not.
  assert.equal(table.call(slots[0]!, 3, 6, 0, 0), 5);
  assert.equal(words[exitPcWord], base);
  assert.equal(words[lastSlotWord], slots[1]);
  // B alone fits in 4, and then A does not.
  assert.equal(table.call(slots[1]!, 8, 4, 0, 0), 2);
  assert.equal(words[lastSlotWord], slots[1]);
  assert.equal(x[1], 2);
  assert.equal(x[2], 8);
});

test('the trampoline follows a link to another page only while the fetch TLB maps that page to the block\'s RAM page', () => {
  const ram = new Ram(1 << 20, { wasm: true });
  // A at page 0 jumps to B at page 1; B counts x2 down and jumps back to A, or leaves to its end.
  const a = [asm.addi(1, 1, 1), asm.jal(0, 4096 - 4)];
  const b = [asm.addi(2, 2, -1), asm.beq(2, 0, 8), asm.jal(0, -4096 - 8), asm.jal(0, 0)];
  a.forEach((word, index) => (ram.i32[index] = word));
  b.forEach((word, index) => (ram.i32[1024 + index] = word));
  const { environment, table, views } = blocksOf(ram);
  const pcA = base;
  const pcB = (base + 4096) | 0;
  const slotA = compileWasmBlocks([planBlock(ram.u16, 0, 0, pcA)], pcA >>> 12, 0, environment, table)[0]!.slot;
  const slotB = compileWasmBlocks([planBlock(ram.u16, 2048, 0, pcB)], pcB >>> 12, 1, environment, table)[0]!.slot;
  table.link(slotA, pcB, slotB);
  table.link(slotB, pcA, slotA);
  const fc = fetchTlbContext(Priv.S);
  const map = (pc: number, ramPage: number, context = fc): void => {
    const vpn = pc >>> 12;
    views.fetchTag[vpn & (tlbEntries - 1)] = vpn | context;
    views.fetchWordBase[vpn & (tlbEntries - 1)] = ramPage * 1024;
  };
  views.fetchTag.fill(-1);
  views.words[chainsWord] = 1;
  views.x[2] = 100;
  // Not in the fetch TLB: A alone.
  assert.equal(table.call(slotA, 0, 1000, 0, fc), 2);
  assert.equal(views.words[exitPcWord], pcB);
  assert.equal(views.words[lastSlotWord], slotA);
  // Mapped to another RAM page, or at another privilege: A alone.
  map(pcB, 2);
  assert.equal(table.call(slotA, 2, 1000, 0, fc), 2);
  map(pcB, 1, fetchTlbContext(Priv.U));
  assert.equal(table.call(slotA, 4, 1000, 0, fc), 2);
  // Mapped: A, B, and back to A only once A's page is mapped too.
  map(pcB, 1);
  assert.equal(table.call(slotA, 6, 1000, 0, fc), 5);
  assert.equal(views.words[exitPcWord], pcA);
  assert.equal(views.words[lastSlotWord], slotB);
  map(pcA, 0);
  // From B (x2 is 99): 98 rounds of B and A (5 each), then B counts x2 to 0 and leaves.
  assert.equal(table.call(slotB, 11, 10_000, 0, fc), 98 * 5 + 2);
  assert.equal(views.words[exitPcWord], (pcB + 12) | 0);
  assert.equal(views.x[1], 4 + 98);
  assert.equal(views.x[2], 0);
});
