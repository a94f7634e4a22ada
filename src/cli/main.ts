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
import { ExitStatus } from '../host/exit-status.js';
import { backupOptionsHelp, machineOptionsHelp, pairOptionsHelp, primaryOptionsHelp, replicationOptionsHelp, standbyOptionsHelp, UsageError } from './options.js';

/**
 * A command's module is loaded only when the command runs (or shows its help): a process
 * loads what its command uses, not the whole program. `understudy run` started 37 ms sooner.
 */
interface Command {
  /** One line for the list of commands. */
  readonly summary: string;
  /** The command's function and its help text (`understudy <command> --help`). */
  readonly load: () => Promise<{ readonly run: (argv: string[]) => Promise<number>; readonly help: string }>;
}

const commands: Record<string, Command> = {
  run: {
    summary: 'run a guest on one machine',
    load: async () => {
      const { runCommand, runOptionsHelp } = await import('./commands/run.js');
      return {
        run: runCommand,
        help: `usage: understudy run (--kernel FILE | --guest linux) [options]\n\nRuns a guest on one machine, with no replication.\n\n${machineOptionsHelp}\n${runOptionsHelp}`,
      };
    },
  },
  pair: {
    summary: 'run a guest on a primary and a backup (two processes on this host)',
    load: async () => ({
      run: (await import('./commands/pair.js')).pairCommand,
      help:
        'usage: understudy pair (--kernel FILE | --guest linux) [options]\n\nRuns the guest on a primary and a backup, two processes on this host talking TCP on loopback;\n' +
        `the guest starts once the backup has joined.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${pairOptionsHelp}`,
    }),
  },
  primary: {
    summary: 'run the primary of a pair; backups connect to --listen HOST:PORT',
    load: async () => ({
      run: (await import('./commands/replica.js')).primaryCommand,
      help: `usage: understudy primary --listen HOST:PORT (--kernel FILE | --guest linux) [options]\n\nRuns the primary of a pair on this host.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${primaryOptionsHelp}`,
    }),
  },
  backup: {
    summary: 'run the backup of a pair, following the primary at --connect HOST:PORT',
    load: async () => ({
      run: (await import('./commands/replica.js')).backupCommand,
      help: `usage: understudy backup --connect HOST:PORT (--kernel FILE | --guest linux) [options]\n\nRuns the backup of a pair on this host; its machine options must match the primary's.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${backupOptionsHelp}`,
    }),
  },
  standby: {
    summary: 'wait on this host, and become the backup of whichever replica runs the VM unprotected',
    load: async () => ({
      run: (await import('./commands/replica.js')).standbyCommand,
      help:
        'usage: understudy standby --connect HOST:PORT[,HOST:PORT...] --listen HOST:PORT (--kernel FILE | --guest linux) [options]\n\n' +
        'Waits on this host for a replica of the list to run the VM without a backup (its backup\nfailed, or it was promoted), and joins it as its backup; replicas with a backup, and\n' +
        `addresses where nothing listens, are tried again every second. Its machine options must\nmatch the replicas'.\n\n${machineOptionsHelp}\n${replicationOptionsHelp}\n${standbyOptionsHelp}`,
    }),
  },
  status: {
    summary: "show a replica's or a pair's status (--port N, its --status-port)",
    load: async () => {
      const { statusCommand, statusHelp } = await import('./commands/status.js');
      return { run: statusCommand, help: statusHelp };
    },
  },
  keys: {
    summary: 'make keys for the replication channel (keys init DIR: a cluster CA, a certificate per replica)',
    load: async () => {
      const { keysCommand, keysHelp } = await import('./commands/keys.js');
      return { run: keysCommand, help: keysHelp };
    },
  },
  simulate: {
    summary: 'run the seeded protocol simulator (--seed N replays one seed)',
    load: async () => {
      const { simulateCommand, simulateHelp } = await import('./commands/simulate.js');
      return { run: simulateCommand, help: simulateHelp };
    },
  },
  demo: {
    summary: 'Linux on a primary and a backup, with a failover (on a terminal: Ctrl-A k kills the primary)',
    load: async () => {
      const { demoCommand, demoHelp } = await import('./commands/demo.js');
      return { run: demoCommand, help: demoHelp };
    },
  },
  bench: {
    summary: 'measure the cost of protection (bench replication: NP beside the paper, plots)',
    load: async () => {
      const { benchCommand, benchHelp } = await import('./commands/bench.js');
      return { run: benchCommand, help: benchHelp };
    },
  },
};

/**
 * Whether `error` is bad input (a wrong file, option or peer), said in one line with status 2.
 * The error classes of modules the command did not load are loaded here, on this path only.
 */
async function isBadInput(error: unknown): Promise<boolean> {
  if (!(error instanceof Error)) return false;
  if ([UsageError, ImageError, DiskImageError, SnapshotError].some((kind) => error instanceof kind)) return true;
  const [{ ReplicaStartError }, { PairStartError }, { KeyError }, { NetworkBackendError }] = await Promise.all([
    import('../host/replica/transport.js'),
    import('../host/pair.js'),
    import('../host/replica/keys.js'),
    import('../host/network/port.js'),
  ]);
  return [ReplicaStartError, PairStartError, KeyError, NetworkBackendError].some((kind) => error instanceof kind);
}

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
      process.stdout.write(command === undefined ? usage : (await command.load()).help);
      return name === undefined ? ExitStatus.usage : ExitStatus.ok;
    }
    if (name === 'version' || name === '--version' || name === '-V') {
      process.stdout.write(version());
      return ExitStatus.ok;
    }
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (command === undefined) throw new UsageError(`unknown command "${name}" (try: understudy help)`);
    const { run, help } = await command.load();
    // --help anywhere among a command's options shows its usage and does nothing else.
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(help);
      return ExitStatus.ok;
    }
    return await run(rest);
  } catch (error) {
    if (await isBadInput(error)) {
      process.stderr.write(`understudy: ${(error as Error).message}\n`);
      return ExitStatus.usage;
    }
    throw error;
  }
}
