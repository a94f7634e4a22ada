/**
 * A hostile guest only hurts itself. Seeded random programs poke every device register (two
 * disks and a NIC whose back-end is a loopback cable) with
 * random values at random widths, set up virtqueues over descriptor tables of semi-valid and
 * garbage chains (loops, wrong directions, huge lengths, addresses outside RAM, unknown
 * request types, sectors past the end), change those tables while requests are in flight,
 * write random CSRs, execute random words and jump about. Whatever it does, the host comes
 * through: every run ends with an outcome, never an exception, and the machine it leaves
 * still saves, restores to the same digest and runs on.
 *
 * HOSTILE_SEEDS (default 40) sets how many programs run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BoardMap, Machine } from '../src/machine/board.js';
import { asm, assemble, li } from '../src/machine/cpu/encode.js';
import { rawImage } from '../src/machine/loader/elf.js';
import { Csr } from '../src/machine/cpu/csr.js';
import { VirtualClock } from '../src/machine/clock.js';
import { BufferConsole } from '../src/host/console.js';
import type { DiskImage } from '../src/host/disk-image.js';
import { runMachine, type RunOutcome } from '../src/host/runner.js';
import { buildHostileGuest, hostileDiskBytes } from './support/hostile-guest.js';

const seeds = Number(process.env['HOSTILE_SEEDS'] ?? 40);
const firstSeed = Number(process.env['HOSTILE_FIRST_SEED'] ?? 1);
const instructionLimit = 400_000;

const allowedOutcomes = new Set<RunOutcome['kind']>(['poweroff', 'reset', 'panic', 'instruction-limit', 'stuck']);

test(`hostile guests (${seeds} seeded programs from seed ${firstSeed}): the host always comes through`, { timeout: 10 * 60_000 }, async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-hostile-'));
  const outcomes = new Map<string, number>();
  let diskRequests = 0;
  let framesSent = 0;
  let framesReceived = 0;
  const verbose = process.env['HOSTILE_VERBOSE'] !== undefined;
  try {
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const started = performance.now();
      if (verbose) process.stderr.write(`seed ${seed}...\n`);
      const guest = buildHostileGuest(seed, directory);
      try {
        const { machine, clock, config } = guest;
        for (const image of guest.disks.values()) counting(image);
        await guest.network.start();
        const outcome = await runMachine({ machine, clock, console: new BufferConsole(''), disks: guest.disks, networks: guest.networks, instructionLimit });
        framesSent += guest.network.counters.framesSent;
        framesReceived += guest.network.counters.framesReceived;
        assert.ok(allowedOutcomes.has(outcome.kind), `seed ${seed}: ${JSON.stringify(outcome)}`);
        const name = outcome.kind === 'stuck' ? `stuck (${outcome.reason.replace(/0x[0-9a-f]+/g, 'N')})` : outcome.kind;
        outcomes.set(name, (outcomes.get(name) ?? 0) + 1);
        if (verbose) process.stderr.write(`seed ${seed}: ${name}, ${machine.retiredInstructions} instructions, ${(performance.now() - started).toFixed(0)} ms\n`);

        // What it left still saves, restores to the same digest, and runs on.
        const copy = new Machine(config, new VirtualClock());
        copy.restore(machine.save());
        assert.equal(copy.digest(), machine.digest(), `seed ${seed}: the restored machine has the same digest`);
        if (machine.power === undefined) copy.run(10_000);
      } finally {
        guest.close();
      }
      for (const file of guest.imagePaths) assert.equal(fs.statSync(file).size, hostileDiskBytes, 'the images keep their size');
    }
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
  t.diagnostic(`outcomes: ${[...outcomes].map(([kind, count]) => `${kind} ${count}`).join(', ')}; ${diskRequests} disk requests reached the images; ${framesSent} frames sent, ${framesReceived} came back`);
  assert.ok(diskRequests > 0, 'some requests were well-formed enough to reach a disk image');

  function counting(image: DiskImage): void {
    const perform = image.perform.bind(image);
    image.perform = (request) => {
      diskRequests++;
      return perform(request);
    };
  }
});

test('a guest asleep with its timer due but masked is stuck at once, not spun on (the deadline has passed)', async () => {
  // mtimecmp = 0 (MTIP up at once), mie.MTIE off, WFI: nothing can wake it.
  const program = [...li(6, BoardMap.clint + 0x4000), asm.sw(0, 6, 0), asm.sw(0, 6, 4), asm.csrrw(0, Csr.mie, 0), asm.wfi(), asm.jal(0, -4)];
  const clock = new VirtualClock();
  const machine = new Machine({ ramBytes: 1 << 20, disks: [] }, clock);
  machine.load(rawImage(assemble(program)));
  const outcome = await runMachine({ machine, clock, console: new BufferConsole(''), disks: new Map(), timeoutSeconds: 20 });
  assert.equal(outcome.kind, 'stuck', JSON.stringify(outcome));
  assert.equal(machine.clockDeadline, undefined);
  assert.equal(machine.retiredInstructions, program.length - 1);
});
