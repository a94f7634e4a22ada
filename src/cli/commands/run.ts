/** `understudy run`: one machine, no replication. */
import { runGuest } from '../../host/run-guest.js';
import { machineOptionSpec, machineSettings, parseCount, parseOptions, parsePositive } from '../options.js';

export const runOptionsHelp = `run options (besides the machine options):
  --timeout SECONDS    stop a run that takes longer (exit status 124)
  --max-instructions N stop after N instructions (exit status 125)
`;

export async function runCommand(argv: string[]): Promise<number> {
  const { values, tokens } = parseOptions(argv, { ...machineOptionSpec, timeout: { type: 'string' }, 'max-instructions': { type: 'string' } });
  return await runGuest({
    machine: machineSettings(values, tokens, 'run'),
    timeoutSeconds: values.timeout === undefined ? undefined : parsePositive(values.timeout, '--timeout'),
    instructionLimit: values['max-instructions'] === undefined ? undefined : parseCount(values['max-instructions'], '--max-instructions'),
  });
}
