/**
 * `understudy <command>`: the command line.
 *
 * Bad input (a missing file, a wrong option, an image that is not an RV32 ELF) ends in one
 * line on stderr and a non-zero status, never a stack trace; only a bug of our own shows one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageError } from '../machine/loader/elf.js';
import { SnapshotError } from '../machine/snapshot.js';
import { DiskImageError } from '../host/disk-image.js';
import { projectRoot } from '../host/guest-image.js';
import { PairStartError } from '../host/pair.js';
import { ReplicaStartError } from '../host/replica/transport.js';
import { NetworkBackendError } from '../host/network/port.js';
import { KeyError } from '../host/replica/keys.js';
import { ExitStatus } from '../host/exit-status.js';
import { backupOptionsHelp, machineOptionsHelp, pairOptionsHelp, primaryOptionsHelp, replicationOptionsHelp, standbyOptionsHelp, UsageError } from './options.js';
import { runCommand, runOptionsHelp } from './commands/run.js';
import { backupCommand, primaryCommand, standbyCommand } from './commands/replica.js';
import { pairCommand } from './commands/pair.js';
import { statusCommand, statusHelp } from './commands/status.js';
import { simulateCommand, simulateHelp } from './commands/simulate.js';
import { demoCommand, demoHelp } from './commands/demo.js';
import { keysCommand, keysHelp } from './commands/keys.js';
import { benchCommand, benchHelp } from './commands/bench.js';

interface Command {
  /** One line for the list of commands. */
  readonly summary: string;
  /** `understudy <command> --help`. */
  readonly help: string;
  readonly run: (argv: string[]) => Promise<number>;
}

const commands: Record<string, Command> = {
  run: {
    summary: 'run a guest on one machine',
    help: `usage: understudy run (--kernel FILE | --guest linux) [options]\n\nRuns a guest on one machine, with no replication.\n\n${machineOptionsHelp}\n${runOptionsHelp}`,
    run: runCommand,
  },
  pair: {
    summary: 'run a guest on a primary and a backup (two processes on this host)',
    help:
      'usage: understudy pair (--kernel FILE | --guest linux) [options]\n\nRuns the guest on a primary and a backup, two processes on this host talking TCP on loopback;\n' +
      `the guest starts once the backup has joined.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${pairOptionsHelp}`,
    run: pairCommand,
  },
  primary: {
    summary: 'run the primary of a pair; backups connect to --listen HOST:PORT',
    help: `usage: understudy primary --listen HOST:PORT (--kernel FILE | --guest linux) [options]\n\nRuns the primary of a pair on this host.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${primaryOptionsHelp}`,
    run: primaryCommand,
  },
  backup: {
    summary: 'run the backup of a pair, following the primary at --connect HOST:PORT',
    help: `usage: understudy backup --connect HOST:PORT (--kernel FILE | --guest linux) [options]\n\nRuns the backup of a pair on this host; its machine options must match the primary's.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${backupOptionsHelp}`,
    run: backupCommand,
  },
  standby: {
    summary: 'wait on this host, and become the backup of whichever replica runs the VM unprotected',
    help:
      'usage: understudy standby --connect HOST:PORT[,HOST:PORT...] --listen HOST:PORT (--kernel FILE | --guest linux) [options]\n\n' +
      'Waits on this host for a replica of the list to run the VM without a backup (its backup\nfailed, or it was promoted), and joins it as its backup; replicas with a backup, and\n' +
      `addresses where nothing listens, are tried again every second. Its machine options must\nmatch the replicas'.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${standbyOptionsHelp}`,
    run: standbyCommand,
  },
  status: {
    summary: "show a replica's or a pair's status (--port N, its --status-port)",
    help: statusHelp,
    run: statusCommand,
  },
  keys: {
    summary: 'make keys for the replication channel (keys init DIR: a cluster CA, a certificate per replica)',
    help: keysHelp,
    run: keysCommand,
  },
  simulate: {
    summary: 'run the seeded protocol simulator (--seed N replays one seed)',
    help: simulateHelp,
    run: simulateCommand,
  },
  demo: {
    summary: 'Linux on a primary and a backup, with a failover (on a terminal: Ctrl-A k kills the primary)',
    help: demoHelp,
    run: demoCommand,
  },
  bench: {
    summary: 'measure the cost of protection (bench replication: NP beside the paper, plots)',
    help: benchHelp,
    run: benchCommand,
  },
};

const usage = `usage: understudy <command> [options]

commands:
${Object.entries(commands)
  .map(([name, command]) => `  ${name.padEnd(9)} ${command.summary}`)
  .join('\n')}
  help      show this text; understudy <command> --help shows a command's options
  version   show the version (also --version)
`;

/** The version of this understudy (package.json). */
function version(): string {
  const packageJson = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version?: string };
  return `understudy ${packageJson.version ?? '?'}\n`;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      const topic = name === 'help' ? rest[0] : undefined;
      const command = topic === undefined ? undefined : commands[topic];
      if (topic !== undefined && command === undefined) throw new UsageError(`no command "${topic}" (try: understudy help)`);
      process.stdout.write(command?.help ?? usage);
      return name === undefined ? ExitStatus.usage : ExitStatus.ok;
    }
    if (name === 'version' || name === '--version' || name === '-V') {
      process.stdout.write(version());
      return ExitStatus.ok;
    }
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (command === undefined) throw new UsageError(`unknown command "${name}" (try: understudy help)`);
    // --help anywhere among a command's options shows its usage and does nothing else.
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(command.help);
      return ExitStatus.ok;
    }
    return await command.run(rest);
  } catch (error) {
    const badInput = [UsageError, ImageError, DiskImageError, SnapshotError, ReplicaStartError, PairStartError, KeyError, NetworkBackendError].some((kind) => error instanceof kind);
    if (badInput) {
      process.stderr.write(`understudy: ${(error as Error).message}\n`);
      return ExitStatus.usage;
    }
    throw error;
  }
}
