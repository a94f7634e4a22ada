/**
 * A run ends at the instruction that hands the outside a disk request (Hart.requestStop), so
 * that a primary's epoch, and the entry its acknowledgement waits for, end there; a backup that
 * runs the same machine to the same count ends at the same instruction for the same reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Machine } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import type { DiskRequest, MachineOutput } from '../src/machine/environment.js';
import { loadImage } from '../src/machine/loader/elf.js';
import { repoRoot } from './helpers.js';

const image = loadImage(fs.readFileSync(path.join(repoRoot, 'guests/build/sim_workload.elf')));
const config = { ramBytes: 16 * 1024 * 1024, disks: [{ capacityBytes: 1024 * 1024, readOnly: false, serial: 'epoch-end' }] };

function boot(): { machine: Machine; clock: VirtualClock } {
  const clock = new VirtualClock();
  const machine = new Machine(config, clock);
  machine.load(image);
  return { machine, clock };
}

test('the run that issues a disk request ends at the instruction that issued it, and a replay to that count ends there too', () => {
  const { machine, clock } = boot();
  const sliceInstructions = 1_000_000;
  /** What the first machine did, as a primary's log would say it: each run's end, and the clock event after it. */
  const log: { endRetired: number; mtime: bigint }[] = [];
  let request: DiskRequest | undefined;
  let outputs: MachineOutput[] = [];
  for (let slice = 0; slice < 200 && request === undefined; slice++) {
    const before = machine.retiredInstructions;
    const result = machine.run(sliceInstructions);
    outputs = machine.takeOutputs();
    const found = outputs.find((output) => output.kind === 'disk-request');
    if (found !== undefined && found.kind === 'disk-request') {
      request = found.request;
      assert.equal(result.reason, 'budget');
      assert.ok(result.retired < sliceInstructions, `the run went on for ${result.retired} instructions after the request`);
      assert.ok(machine.retiredInstructions > before);
      assert.ok(machine.stoppedForOutput);
      assert.equal(outputs.at(-1), found, 'nothing came after the request in that run');
      log.push({ endRetired: machine.retiredInstructions, mtime: 0n });
      break;
    }
    assert.ok(!machine.stoppedForOutput, 'a run without a request does not say it stopped for one');
    if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
    const mtime = clock.mtimeNow(machine.retiredInstructions);
    machine.applyEvent({ kind: 'clock', mtime });
    log.push({ endRetired: machine.retiredInstructions, mtime });
  }
  assert.ok(request !== undefined, 'the guest issued a disk request');

  // A second machine replays the log as a backup does: each run to the recorded count, then the
  // recorded event. Its last run ends at the same instruction, with the same request.
  const replay = boot().machine;
  for (const [index, { endRetired, mtime }] of log.entries()) {
    replay.run(endRetired - replay.retiredInstructions);
    assert.equal(replay.retiredInstructions, endRetired);
    const mine = replay.takeOutputs().find((output) => output.kind === 'disk-request');
    if (index === log.length - 1) {
      assert.ok(mine !== undefined && mine.kind === 'disk-request', 'the replay issued the request at the same count');
      assert.deepEqual(mine.request, request);
      assert.ok(replay.stoppedForOutput);
    } else {
      assert.equal(mine, undefined, 'no request before that count');
      replay.applyEvent({ kind: 'clock', mtime });
    }
  }
  // The next run starts afresh: a stop asked for in the last one does not end it at once.
  const next = machine.run(1);
  assert.equal(next.retired, 1);
  assert.ok(!machine.stoppedForOutput);
});
