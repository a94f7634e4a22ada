/**
 * A guest decides how often it reads the environment; the log entry must never outgrow a
 * frame. A guest that reads the clock in a three-instruction loop, under `pair` at the
 * largest epoch allowed: the primary ends epochs early at exact instruction counts, the
 * backup follows, and the guest runs to its end (it used to crash the primary with
 * "epoch message of 17000050 bytes exceeds the frame limit").
 *
 * Needs `npx tsc -p tsconfig.json` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { asm, assemble, li } from '../src/machine/cpu/encode.js';
import { Csr } from '../src/machine/cpu/csr.js';
import { BoardMap } from '../src/machine/board.js';
import { epochInstructionsMax } from '../src/replication/replica.js';
import { epochEntryBytesDefault } from '../src/replication/entry-budget.js';
import { frameHeaderBytes } from '../src/replication/messages.js';
import { describeResult, runCli, scratchDirectory } from './support/replica-processes.js';

/** Loop iterations: three instructions and one clock reading each, some 8 entries' worth. */
const iterations = 2_000_000;
/** The sifive,test0 command that powers off with status 0. */
const testDevicePass = 0x5555;

/** `rdtime` `iterations` times, then power off with status 0. */
function rdtimeImage(): Uint8Array {
  return assemble([
    ...li(7, iterations),
    asm.csrrs(5, Csr.time, 0), // loop: rdtime t0
    asm.addi(7, 7, -1),
    asm.bne(7, 0, -8),
    ...li(5, BoardMap.test),
    ...li(6, testDevicePass),
    asm.sw(6, 5, 0),
    asm.jal(0, 0),
  ]);
}

test(`pair: a guest reading the clock in a tight loop at --epoch ${epochInstructionsMax} runs to its end`, { timeout: 180_000 }, async () => {
  const directory = scratchDirectory('bounded-log');
  try {
    const image = path.join(directory, 'rdtime.bin');
    fs.writeFileSync(image, rdtimeImage());
    // A patient failure timeout: this test is about the log's size, not about a loaded
    // machine's scheduling stalls being taken for a dead peer.
    const result = await runCli(['pair', '--kernel', image, '--epoch', String(epochInstructionsMax), '--failure-timeout', '3000', '--verbose'], 150_000);
    const context = describeResult(result, 20);
    assert.equal(result.status, 0, context);
    assert.doesNotMatch(result.stderr, /exceeds the frame limit|RangeError|AssertionError|^\s+at /m, context);
    assert.doesNotMatch(result.stderr, /the primary failed|backup lost|divergence/, context);
    const summary = /\[primary [^\]]*\] log summary: (\d+) bytes sent over (\d+) epochs/.exec(result.stderr);
    assert.ok(summary !== null, context);
    const [bytes, epochs] = [Number(summary[1]), Number(summary[2])];
    // 2,000,000 readings of 17 bytes: at least 34 MB, in entries of at most the budget each.
    assert.ok(bytes > iterations * 17, `${bytes} bytes of log\n${context}`);
    assert.ok(epochs >= Math.ceil(bytes / (epochEntryBytesDefault + frameHeaderBytes)), `${epochs} epochs for ${bytes} bytes\n${context}`);
    assert.match(result.stderr, new RegExp(`\\[backup [^\\]]*\\] log summary: ${bytes} bytes received over ${epochs} epochs`), context);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
