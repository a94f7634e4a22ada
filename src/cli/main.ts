/**
 * `understudy <command>`: the command line.
 *
 * Bad input (a missing file, a wrong option, an image that is not an RV32 ELF) ends in one
 * line on stderr and a non-zero status, never a stack trace; only a bug of our own shows one.
 */
import { ImageError } from '../machine/loader/elf.js';
import { DiskImageError } from '../host/disk-image.js';
import { SnapshotError } from '../machine/snapshot.js';
import { ReplicaStartError } from '../host/replica-runtime.js';
import { machineOptionsHelp, UsageError } from './machine-options.js';
import { runCommand, runOptionsHelp } from './run.js';
import { backupCommand, pairCommand, primaryCommand, replicationOptionsHelp, statusCommand } from './replicate.js';
import { simulateCommand, simulateHelp } from './simulate.js';
import { demoCommand } from './demo.js';

export { UsageError, readKernel } from './machine-options.js';

const usage = `usage: understudy <command> [options]

commands:
  run       run a guest on one machine
  pair      run a guest on a primary and a backup (two processes on this host)
  primary   run the primary of a pair, waiting for its backup on --listen HOST:PORT
  backup    run the backup of a pair, following the primary at --connect HOST:PORT
  status    show a replica's status (--port N, its --status-port)
  simulate  run the seeded protocol simulator (--seed N replays one seed)
  demo      Linux on a primary and a backup, with a failover (on a terminal: Ctrl-A k kills the primary)
  help      show this text

${machineOptionsHelp}
${runOptionsHelp}
${replicationOptionsHelp}
${simulateHelp}`;

export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case 'run':
        return await runCommand(rest);
      case 'pair':
        return await pairCommand(rest);
      case 'primary':
        return await primaryCommand(rest);
      case 'backup':
        return await backupCommand(rest);
      case 'status':
        return await statusCommand(rest);
      case 'simulate':
        return await simulateCommand(rest);
      case 'demo':
        return await demoCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(usage);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (try: understudy help)`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof ImageError || error instanceof DiskImageError || error instanceof SnapshotError || error instanceof ReplicaStartError) {
      process.stderr.write(`understudy: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

