/**
 * The command line's options: how they are read (one-line errors), the machine options every
 * command that builds a machine shares (run, primary, backup, pair), and the replication
 * options. What the settings mean is the host layer's business; this file only reads them.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ramBytesMax, ramBytesMin } from '../machine/memory/ram.js';
import { defaultReplicationOptions, epochInstructionsMax, epochInstructionsMin, validateOptions, type ReplicationOptions } from '../replication/replica.js';
import { projectRoot, type MachineSettings } from '../host/guest-image.js';
import { defaultBootargs, linuxDefaults } from '../host/linux-guest.js';
import { NetOptionError, parseNetSpec, type NetSpec } from '../host/network/option.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const defaultMemoryBytes = 128 * 1024 * 1024;

export const machineOptionsHelp = `machine options:
  --kernel FILE        RV32 ELF executable (or a raw image loaded at 0x80000000), started in M-mode
  --guest linux        boot the Linux guest (kernel and initramfs from linux/build.sh) to its
                       shell; its ext4 data disk is --disk, or .cache/linux/data.img, created
                       if missing. --kernel, --initrd and --append override its parts
  --disk FILE          a raw disk image as a virtio block device (read-write); repeatable
  --disk-ro FILE       the same, read-only
  --memory SIZE        RAM size, e.g. 128M, 1.5G, or 128 (MiB, as QEMU's -m) (default 128M)
  --clock host|virtual host: real time (default); virtual: time from the instruction count
                       (exactly repeatable, like QEMU's -icount shift=0)
  --initrd FILE        (Linux) the initramfs
  --append TEXT        (Linux) the kernel command line (default "${defaultBootargs}")
  --net SPEC           a virtio network interface (repeatable), like QEMU's -nic:
                         user[,hostfwd=tcp:[HOSTADDR]:HOSTPORT-:GUESTPORT]...  through passt
                           (guest 10.0.2.15/24, host 10.0.2.2; forwards bind to 127.0.0.1
                           unless HOSTADDR is given)
                         tap,ifname=NAME       a TAP device (bridged by you)
                         stream,path=SOCKET    frames on a UNIX socket, as QEMU's -netdev stream
                       each takes mac=MAC (default 52:54:00:12:34:56, counting up)
`;

/** parseArgs specifications of the machine options. */
export const machineOptionSpec = {
  kernel: { type: 'string' },
  guest: { type: 'string' },
  initrd: { type: 'string' },
  append: { type: 'string' },
  disk: { type: 'string', multiple: true },
  'disk-ro': { type: 'string', multiple: true },
  memory: { type: 'string' },
  clock: { type: 'string' },
  net: { type: 'string', multiple: true },
} as const;

type Token = { kind: string; name?: string; value?: string | undefined };

/** Runs parseArgs with one-line errors, as UsageError. */
export function parseOptions<const T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: false, tokens: true });
  } catch (error) {
    // Some of parseArgs' messages span several lines; ours are one line.
    throw new UsageError((error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' '));
  }
}

/**
 * `--epoch -5`: parseArgs takes a value that starts with a dash for an option and calls the
 * argument ambiguous; a negative number is a value, to be judged by the option's own check
 * (which states the range), so it is passed on as `--epoch=-5`.
 */
function joinNegativeValues(argv: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const spec = arg.startsWith('--') && !arg.includes('=') ? options[arg.slice(2)] : undefined;
    if (spec?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

export function machineSettings(
  values: { kernel?: string | undefined; guest?: string | undefined; initrd?: string | undefined; append?: string | undefined; memory?: string | undefined; clock?: string | undefined },
  tokens: readonly Token[],
  command: string,
): MachineSettings {
  const guest = values.guest ?? 'bare';
  if (guest !== 'bare' && guest !== 'linux') throw new UsageError(`--guest must be linux, not "${guest}"`);
  if (guest === 'bare' && values.kernel === undefined) throw new UsageError(`${command} needs --kernel FILE (or --guest linux)`);
  if (guest === 'bare' && (values.initrd !== undefined || values.append !== undefined)) throw new UsageError('--initrd and --append go with --guest linux');
  const linux = linuxDefaults(projectRoot);
  const disks: { path: string; readOnly: boolean }[] = [];
  for (const token of tokens) {
    if (token.kind === 'option' && (token.name === 'disk' || token.name === 'disk-ro') && token.value !== undefined) {
      disks.push({ path: token.value, readOnly: token.name === 'disk-ro' });
    }
  }
  const clock = values.clock ?? 'host';
  if (clock !== 'host' && clock !== 'virtual') throw new UsageError(`--clock must be host or virtual, not "${clock}"`);
  if (guest === 'linux' && disks.length === 0) disks.push({ path: linux.dataDisk, readOnly: false });
  const settings: MachineSettings = {
    guest,
    kernel: values.kernel ?? linux.kernel,
    bootargs: values.append ?? defaultBootargs,
    disks,
    memoryBytes: values.memory === undefined ? defaultMemoryBytes : parseSize(values.memory),
    clock,
    nets: netSpecs(tokens),
  };
  if (guest === 'linux') settings.initrd = values.initrd ?? linux.initrd;
  return settings;
}

function netSpecs(tokens: readonly Token[]): NetSpec[] {
  const specs: NetSpec[] = [];
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name !== 'net' || token.value === undefined) continue;
    try {
      specs.push(parseNetSpec(token.value, specs.length));
    } catch (error) {
      if (error instanceof NetOptionError) throw new UsageError(error.message);
      throw error;
    }
  }
  const macs = new Set(specs.map((spec) => spec.mac));
  if (macs.size !== specs.length) throw new UsageError('--net: two interfaces with the same MAC address');
  return specs;
}

/**
 * Parses a RAM size as QEMU's -m does: "128" (MiB, without a suffix), "128M", "1G", "1.5G",
 * "65536K" (K, M, G, T; an optional "B" or "iB" after them).
 */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i?B)?)?$/i.exec(text.trim());
  if (match === null) throw new UsageError(`--memory: cannot read "${text}" as a size (try 128M, 1.5G, or 128 for MiB)`);
  const units: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
  const bytes = Number(match[1]) * units[(match[2] ?? 'M').toUpperCase()]!;
  if (bytes < ramBytesMin || bytes > ramBytesMax) {
    throw new UsageError(`--memory ${text} is out of range: between ${ramBytesMin / 1024 ** 2} MiB and ${Math.floor(ramBytesMax / 1024 ** 2)} MiB`);
  }
  if (!Number.isInteger(bytes) || bytes % 4096 !== 0) throw new UsageError(`--memory ${text}: must be a multiple of 4 KiB`);
  return bytes;
}

export function parsePositive(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`${option} needs a positive number, not "${text}"`);
  return value;
}

/** A whole number from `min` to `max`; one message, which states the range, for anything else. */
export function parseInteger(text: string, option: string, range: { min: number; max: number; unit: string }): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw new UsageError(`${option} must be a whole number of ${range.unit} from ${range.min} to ${range.max}, not "${text}"`);
  }
  return value;
}

/** An instruction count: the machine runs whole instructions, so fractions are a usage error. */
export function parseCount(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`${option} needs a positive whole number, not "${text}"`);
  return value;
}

// -------------------------------------------------------------------------------------------
// Replication options (pair, primary, backup)

const epochRange = { min: epochInstructionsMin, max: epochInstructionsMax, unit: 'instructions' };

export const replicationOptionsHelp = `replication options (pair, primary, backup):
  --epoch N                    instructions per epoch, ${epochRange.min} to ${epochRange.max} (default ${defaultReplicationOptions.epochInstructions})
  --protocol relaxed|original  relaxed (default): outputs wait for the backup's acknowledgement,
                               the guest runs on; original: the primary waits at every epoch end
  --pending-io reissue|uncertain  at failover, I/O in flight is re-issued (default) or completed
                               with an error for the guest's driver to retry
  --failure-timeout MS         declare the peer failed after this much silence (default ${defaultReplicationOptions.failureTimeoutMs})
  --join-timeout MS            give up a join (state transfer) after this much silence
                               (default ${defaultReplicationOptions.joinTimeoutMs}; at least the failure timeout)
  --arbiter DIR                shared directory for the go-live test-and-set (default: beside
                               the first disk image)
  --status-port N              serve the status view as JSON on 127.0.0.1:N
  --verbose                    log the protocol's events on stderr
`;

export const primaryOptionsHelp = `primary options:
  --listen HOST:PORT           where backups connect (required); the guest runs at once, not
                               protected, until one joins
  --wait-for-backup            wait for the first backup before the guest starts
`;

export const backupOptionsHelp = `backup options:
  --connect HOST:PORT          the primary (required)
  --connect-timeout MS         keep trying to reach it this long (default 15000)
`;

export const pairOptionsHelp = `pair options:
  --kill-primary-after MS      SIGKILL the primary this long after the backup has joined
  --kill-backup-after MS       SIGKILL the backup this long after it has joined
                               (on a terminal: Ctrl-A k kills the primary, Ctrl-A b the backup,
                               Ctrl-A x quits)
`;

export const replicationOptionSpec = {
  epoch: { type: 'string' },
  protocol: { type: 'string' },
  'pending-io': { type: 'string' },
  'failure-timeout': { type: 'string' },
  'join-timeout': { type: 'string' },
  arbiter: { type: 'string' },
  'status-port': { type: 'string' },
  verbose: { type: 'boolean' },
} as const;

export interface ReplicationSettings {
  options: ReplicationOptions;
  arbiter: string | undefined;
  statusPort: number | undefined;
  verbose: boolean;
}

export function replicationSettings(values: {
  epoch?: string | undefined;
  protocol?: string | undefined;
  'pending-io'?: string | undefined;
  'failure-timeout'?: string | undefined;
  'join-timeout'?: string | undefined;
  arbiter?: string | undefined;
  'status-port'?: string | undefined;
  verbose?: boolean | undefined;
}): ReplicationSettings {
  const protocol = values.protocol ?? defaultReplicationOptions.protocol;
  if (protocol !== 'relaxed' && protocol !== 'original') throw new UsageError(`--protocol must be relaxed or original, not "${protocol}"`);
  const pendingIo = values['pending-io'] ?? defaultReplicationOptions.pendingIo;
  if (pendingIo !== 'reissue' && pendingIo !== 'uncertain') throw new UsageError(`--pending-io must be reissue or uncertain, not "${pendingIo}"`);
  const failureTimeoutMs = values['failure-timeout'] === undefined ? defaultReplicationOptions.failureTimeoutMs : parsePositive(values['failure-timeout'], '--failure-timeout');
  // The lease and the heartbeat follow the failure timeout (see docs/REPLICATION.md).
  const leaseMs = Math.min(defaultReplicationOptions.leaseMs, failureTimeoutMs * 0.4);
  const options: ReplicationOptions = {
    epochInstructions: values.epoch === undefined ? defaultReplicationOptions.epochInstructions : parseInteger(values.epoch, '--epoch', epochRange),
    protocol,
    pendingIo,
    failureTimeoutMs,
    leaseMs,
    heartbeatIntervalMs: leaseMs / 4,
    joinTimeoutMs:
      values['join-timeout'] === undefined ? Math.max(failureTimeoutMs, defaultReplicationOptions.joinTimeoutMs) : parsePositive(values['join-timeout'], '--join-timeout'),
  };
  try {
    validateOptions(options);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  return {
    options,
    arbiter: values.arbiter,
    statusPort: values['status-port'] === undefined ? undefined : parseCount(values['status-port'], '--status-port'),
    verbose: values.verbose ?? false,
  };
}

/** The command line for a child: the parent's, minus what only the parent uses. */
export function childArguments(argv: readonly string[], parentOnly: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : '';
    if (parentOnly.includes(name)) {
      if (!arg.includes('=')) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}
