/**
 * `run`: one machine, no replication. Boots the guest, runs it with the host loop
 * (runner.ts), boots it again when it asks for a reset, and reports how it ended.
 */
import { Machine } from '../machine/board.js';
import { VirtualClock, type MachineClock } from '../machine/clock.js';
import { HostClock } from './clocks.js';
import { TerminalConsole } from './console.js';
import { ExitStatus, guestExitStatus } from './exit-status.js';
import { boardConfig, boot, diskSlots, openDisks, planBoot, type MachineSettings } from './guest-image.js';
import { imagePort, runMachine, type RunOutcome } from './runner.js';
import { warmsUp, warmUpCpu } from './warm-up.js';
import { openNetworks } from './network/backends.js';
import type { NetworkPort } from './network/port.js';

export interface RunSettings {
  readonly machine: MachineSettings;
  readonly timeoutSeconds: number | undefined;
  readonly instructionLimit: number | undefined;
}

/** Runs the guest to its end; returns the exit status. */
export async function runGuest(settings: RunSettings): Promise<number> {
  const machineSettings = settings.machine;
  // First: V8 compiles the interpreter's loop on another thread while this one reads the
  // guest's files and builds its machine; the warm-up's first compile then covers every path
  // the guest will take (warm-up.ts).
  if (warmsUp(machineSettings.guest)) warmUpCpu(machineSettings.cpu);
  const plan = planBoot(machineSettings);
  let notesShown = false;
  const { images, configs } = openDisks(machineSettings, true);
  const config = boardConfig(machineSettings, configs);
  let networks: Map<number, NetworkPort>;
  try {
    // The back-ends outlive a guest reset, as a cable does a reboot.
    networks = await openNetworks(config, machineSettings.nets, (line) => process.stderr.write(`\nunderstudy: ${line}\n`));
  } catch (error) {
    for (const image of images) image.close();
    throw error;
  }
  const terminal = new TerminalConsole();
  try {
    for (;;) {
      // A reset starts the machine's clock from zero again, as a power cycle would.
      const clock: MachineClock = machineSettings.clock === 'virtual' ? new VirtualClock() : new HostClock();
      const disks = diskSlots(images);
      const machine = new Machine(config, imagePort(clock, disks), { cpu: machineSettings.cpu });
      boot(machine, plan, machineSettings);
      // What the user should know about the boot, once it has worked (a failed one says why).
      if (!notesShown) for (const note of plan.notes) process.stderr.write(`understudy: ${note}\n`);
      notesShown = true;
      const outcome = await runMachine({
        machine,
        clock,
        console: terminal,
        disks,
        networks,
        ...(settings.timeoutSeconds === undefined ? {} : { timeoutSeconds: settings.timeoutSeconds }),
        ...(settings.instructionLimit === undefined ? {} : { instructionLimit: settings.instructionLimit }),
      });
      if (outcome.kind === 'reset') continue; // the guest asked for a reset: boot again
      await terminal.drain();
      return reportOutcome(outcome);
    }
  } finally {
    terminal.close();
    for (const port of networks.values()) port.close();
    for (const image of images) image.close();
  }
}

/** Says on stderr how a run ended (unless the guest simply powered off); returns the exit status. */
export function reportOutcome(outcome: Exclude<RunOutcome, { kind: 'reset' }>): number {
  switch (outcome.kind) {
    case 'poweroff':
      return guestExitStatus(outcome);
    case 'quit':
      if (outcome.outputClosed === true) {
        // As a program killed by SIGPIPE would end (`understudy run ... | head`).
        process.stderr.write('\nunderstudy: the console\'s output was closed\n');
        return ExitStatus.outputClosed;
      }
      process.stderr.write('\nunderstudy: quit\n');
      return ExitStatus.ok;
    case 'panic':
      process.stderr.write('\nunderstudy: the guest kernel panicked\n');
      return ExitStatus.panic;
    case 'timeout':
      process.stderr.write(`\nunderstudy: timed out after ${outcome.seconds} s\n`);
      return ExitStatus.timeout;
    case 'instruction-limit':
      process.stderr.write('\nunderstudy: instruction limit reached\n');
      return ExitStatus.instructionLimit;
    case 'stuck':
      process.stderr.write(`\nunderstudy: ${outcome.reason}\n`);
      return ExitStatus.stuck;
  }
}
