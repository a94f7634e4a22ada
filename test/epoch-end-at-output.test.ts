/**
 * A run ends at the instruction that hands the outside a disk request (Hart.requestStop), so
 * that a primary's epoch, and the entry its acknowledgement waits for, end there; a backup that
 * runs the same machine to the same count ends at the same instruction for the same reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Machine, configKey, writeBackBytesMax } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { answeredByDevice, writeOverlapsRead, type DiskReadRequest, type DiskRequest, type EnvironmentPort, type MachineEvent, type MachineOutput } from '../src/machine/environment.js';
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

test('a write-back disk: a write does not end the run, the guest has its answer at once, and a replay to the same counts issues the same completed writes', () => {
  const writeBack = { ...config, disks: [{ ...config.disks[0]!, writeBack: true }] };
  const start = (): { machine: Machine; clock: VirtualClock } => {
    const clock = new VirtualClock();
    const machine = new Machine(writeBack, clock);
    machine.load(image);
    return { machine, clock };
  };
  const { machine, clock } = start();
  const disk = new Uint8Array(config.disks[0]!.capacityBytes);
  /** The log of the run, as a primary's entries would hold it: each run's end and the events after it. */
  const log: { endRetired: number; events: MachineEvent[]; outputs: Uint8Array }[] = [];
  let completedWrites = 0;
  let snapshot: { bytes: Uint8Array; outputs: MachineOutput[] } | undefined;
  for (let slice = 0; slice < 400 && machine.power === undefined; slice++) {
    const result = machine.run(20_000);
    const saved = snapshot === undefined && machine.hasOutputs ? machine.save() : undefined;
    const outputs = machine.takeOutputs();
    if (saved !== undefined && outputs.some(isCompletedWrite)) snapshot = { bytes: saved, outputs };
    const events: MachineEvent[] = [];
    for (const output of outputs) {
      if (output.kind !== 'disk-request') continue;
      const request = output.request;
      if (isCompletedWrite(output)) {
        assert.ok(request.op === 'write');
        disk.set(request.data, request.offsetBytes);
        completedWrites++;
        continue;
      }
      // Reads and flushes still end the run at their instruction, and wait for the host.
      assert.ok(machine.stoppedForOutput && outputs.at(-1) === output, `a ${request.op} ends the run`);
      const done = { kind: 'disk-completion' as const, slot: request.slot, requestId: request.requestId, status: 'ok' as const };
      events.push(request.op === 'read' ? { ...done, data: disk.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes) } : done);
    }
    if (outputs.length > 0 && outputs.every((output) => output.kind !== 'disk-request' || isCompletedWrite(output))) {
      assert.ok(!machine.stoppedForOutput, 'completed writes alone do not end the run');
      assert.ok(result.reason !== 'budget' || result.retired === 20_000, `the run went its whole budget: ${result.retired}`);
    }
    if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
    events.push({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    for (const event of events) machine.applyEvent(event);
    log.push({ endRetired: machine.retiredInstructions, events, outputs: encodeOutputs(outputs) });
  }
  assert.deepEqual(machine.power, { kind: 'poweroff', status: 0 }, 'the workload passed, its reads seeing the writes answered at once');
  assert.ok(completedWrites > 10, `${completedWrites} writes answered at once`);

  // A backup's replay: each run to the recorded count, then the recorded events; the same outputs, the same end.
  const replay = start().machine;
  for (const { endRetired, events, outputs } of log) {
    replay.run(endRetired - replay.retiredInstructions);
    assert.equal(replay.retiredInstructions, endRetired);
    assert.deepEqual(encodeOutputs(replay.takeOutputs()), outputs);
    for (const event of events) replay.applyEvent(event);
  }
  assert.equal(replay.digest(), machine.digest());

  // A snapshot taken with a completed write not yet taken keeps it, marked completed.
  assert.ok(snapshot !== undefined, 'a snapshot with a completed write pending');
  const restored = start().machine;
  restored.restore(snapshot.bytes);
  assert.deepEqual(restored.takeOutputs(), snapshot.outputs);
});

function isCompletedWrite(output: MachineOutput): boolean {
  return output.kind === 'disk-request' && answeredByDevice(output.request);
}

function encodeOutputs(outputs: readonly MachineOutput[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(outputs, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value)));
}

test('write-back is part of the configuration: a snapshot of a write-back machine restores only into another', () => {
  const writeBack = { ...config, disks: [{ ...config.disks[0]!, writeBack: true }] };
  assert.notEqual(configKey(writeBack), configKey(config));
  assert.equal(configKey({ ...config, disks: [{ ...config.disks[0]!, writeBack: false }] }), configKey(config), 'off is the old key');
  const machine = new Machine(writeBack, new VirtualClock());
  machine.load(image);
  machine.run(10_000);
  assert.throws(() => new Machine(config, new VirtualClock()).restore(machine.save()));
  assert.doesNotThrow(() => new Machine(writeBack, new VirtualClock()).restore(machine.save()));
});

test(`a write-back disk: past ${writeBackBytesMax} bytes of answered writes not taken, the run ends, so that the host takes them`, () => {
  const diskbench = loadImage(fs.readFileSync(path.join(repoRoot, 'guests/build/diskbench.elf')));
  const machine = new Machine({ ramBytes: 16 * 1024 * 1024, disks: [{ capacityBytes: 8 * 1024 * 1024, readOnly: false, serial: 'wb', writeBack: true }] }, new VirtualClock());
  machine.load(diskbench);
  // diskbench writes 2,048 blocks of 8 KiB, each answered at once: one long run goes until the bound.
  const result = machine.run(500_000_000);
  assert.equal(result.reason, 'budget');
  assert.ok(machine.stoppedForOutput);
  const writes = machine.takeOutputs().flatMap((output) => (output.kind === 'disk-request' && answeredByDevice(output.request) ? [output.request.data.length] : []));
  const bytes = writes.reduce((sum, length) => sum + length, 0);
  assert.equal(bytes, writeBackBytesMax, `${writes.length} writes of 8 KiB end the run at the bound exactly`);
  // Taken, the count starts again: the next run goes on writing.
  machine.run(50_000);
  assert.ok(machine.takeOutputs().some((output) => output.kind === 'disk-request'));
});

test('reads answered at once: never past a write not yet taken to their sectors; the guest ends as when every read is a request', () => {
  /** Runs sim_workload to its end on a host that performs outputs between runs; `atOnce`: its port answers reads at once. */
  const runToEnd = (atOnce: boolean, writeBack: boolean): { console: string; disk: Uint8Array; asked: number; declinedBehindWrite: number } => {
    const clock = new VirtualClock();
    const disk = new Uint8Array(config.disks[0]!.capacityBytes);
    let asked = 0;
    let declinedBehindWrite = 0;
    const port: EnvironmentPort = {
      read: (kind, retired) => clock.read(kind, retired),
      ...(atOnce ? { readDisk: (request: DiskReadRequest) => (asked++, disk.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes)) } : {}),
    };
    const machine = new Machine({ ...config, disks: [{ ...config.disks[0]!, writeBack }] }, port);
    machine.load(image);
    let text = '';
    const completions: MachineEvent[] = [];
    while (machine.power === undefined && machine.retiredInstructions < 50_000_000) {
      const result = machine.run(20_000);
      const outputs = machine.takeOutputs();
      for (const [index, output] of outputs.entries()) {
        if (output.kind === 'console-output') text += Buffer.from(output.bytes).toString('latin1');
        if (output.kind !== 'disk-request') continue;
        const request = output.request;
        if (request.op === 'read') {
          // A read that went out though the port answers every read: a write before it in this run changes its sectors.
          const behind = outputs.slice(0, index).some((before) => before.kind === 'disk-request' && before.request.op === 'write' && writeOverlapsRead(before.request, request));
          if (atOnce) assert.ok(behind, `read ${request.requestId} went out with no write to its sectors before it`);
          if (behind) declinedBehindWrite++;
          completions.push({ kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status: 'ok', data: disk.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes) });
          continue;
        }
        if (request.op === 'write') disk.set(request.data, request.offsetBytes);
        if (!answeredByDevice(request)) completions.push({ kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status: 'ok' });
      }
      for (const event of completions.splice(0)) machine.applyEvent(event);
      if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
      machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    }
    assert.deepEqual(machine.power, { kind: 'poweroff', status: 0 }, text);
    return { console: text, disk, asked, declinedBehindWrite };
  };
  for (const writeBack of [false, true]) {
    const requests = runToEnd(false, writeBack);
    const atOnce = runToEnd(true, writeBack);
    assert.match(atOnce.console, /sim_workload: PASS/);
    assert.equal(atOnce.console, requests.console);
    assert.deepEqual(atOnce.disk, requests.disk);
    assert.ok(atOnce.asked > 0, "no read was asked at once");
    // The guest reads sectors it has just written to (a write and a read in flight together):
    // with the write answered by the device and not taken yet, the read must go out behind it.
    if (writeBack) assert.ok(atOnce.declinedBehindWrite > 0, 'no read went out behind a write to its sectors');
  }
});
