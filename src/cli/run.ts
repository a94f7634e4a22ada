/** `understudy run`: one machine, no replication. */
import { Machine } from '../machine/board.js';
import { HostClock, VirtualClock, type MachineClock } from '../host/clocks.js';
import { TerminalConsole } from '../host/console.js';
import { runMachine, type RunOutcome } from '../host/runner.js';
import { boardConfig, boot, diskSlots, machineOptionSpec, machineSettings, openDisks, parseCount, parseOptions, parsePositive, planBoot, type MachineSettings } from './machine-options.js';

export const runOptionsHelp = `run options (besides the machine options):
  --timeout SECONDS    stop a run that takes longer (exit status 124)
  --max-instructions N stop after N instructions (exit status 125)
`;

interface RunSettings extends MachineSettings {
  timeoutSeconds?: number;
  instructionLimit?: number;
}

function parseRunOptions(argv: string[]): RunSettings {
  const { values, tokens } = parseOptions(argv, { ...machineOptionSpec, timeout: { type: 'string' }, 'max-instructions': { type: 'string' } });
  const settings: RunSettings = machineSettings(values, tokens, 'run');
  if (values.timeout !== undefined) settings.timeoutSeconds = parsePositive(values.timeout, '--timeout');
  if (values['max-instructions'] !== undefined) settings.instructionLimit = parseCount(values['max-instructions'], '--max-instructions');
  return settings;
}

export async function runCommand(argv: string[]): Promise<number> {
  const settings = parseRunOptions(argv);
  const plan = planBoot(settings);
  const { images, configs } = openDisks(settings);
  const terminal = new TerminalConsole();
  try {
    for (;;) {
      // A reset starts the machine's clock from zero again, as a power cycle would.
      const clock: MachineClock = settings.clock === 'virtual' ? new VirtualClock() : new HostClock();
      const machine = new Machine(boardConfig(settings, configs), clock);
      boot(machine, plan, settings);
      const disks = diskSlots(machine, images);
      const outcome = await runMachine({
        machine,
        clock,
        console: terminal,
        disks,
        ...(settings.timeoutSeconds === undefined ? {} : { timeoutSeconds: settings.timeoutSeconds }),
        ...(settings.instructionLimit === undefined ? {} : { instructionLimit: settings.instructionLimit }),
      });
      if (outcome.kind === 'reset') continue; // the guest asked for a reset: boot again
      await terminal.drain();
      return reportOutcome(outcome);
    }
  } finally {
    terminal.close();
    for (const image of images) image.close();
  }
}

export function reportOutcome(outcome: Exclude<RunOutcome, { kind: 'reset' }>): number {
  switch (outcome.kind) {
    case 'poweroff':
      // A failure status that is a multiple of 256 must not look like success to the shell.
      return outcome.status === 0 ? 0 : outcome.status % 256 === 0 ? 1 : outcome.status % 256;
    case 'quit':
      if (outcome.outputClosed === true) {
        // As a program killed by SIGPIPE would end (`understudy run ... | head`).
        process.stderr.write('\nunderstudy: the console\'s output was closed\n');
        return 141;
      }
      process.stderr.write('\nunderstudy: quit\n');
      return 0;
    case 'panic':
      process.stderr.write('\nunderstudy: the guest kernel panicked\n');
      return 4;
    case 'timeout':
      process.stderr.write(`\nunderstudy: timed out after ${outcome.seconds} s\n`);
      return 124;
    case 'instruction-limit':
      process.stderr.write('\nunderstudy: instruction limit reached\n');
      return 125;
    case 'stuck':
      process.stderr.write(`\nunderstudy: ${outcome.reason}\n`);
      return 3;
  }
}
