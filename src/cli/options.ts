/**
 * The command line's options: how they are read (one-line errors), the machine options every
 * command that builds a machine shares (run, primary, backup, pair), and the replication
 * options. What the settings mean is the host layer's business; this file only reads them.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ramBytesMax, ramBytesMin } from '../machine/memory/ram.js';
import { cpuModes, type CpuMode } from '../machine/board.js';
import {
  backupsMax, defaultDigestEveryEpochs, epochMergeMax, defaultReplicationOptions, digestEveryEpochsMax, digestIntervalInstructionsDefault, epochInstructionsMax, epochInstructionsMin,
  validateOptions, type ReplicationOptions,
} from '../replication/replica.js';
import { projectRoot, type MachineSettings } from '../host/guest-image.js';
import { parseEtcdAddress } from '../host/replica/etcd-arbiter.js';
import { defaultBootargs, linuxDefaults } from '../host/linux-guest.js';
import { NetOptionError, parseNetSpec, type NetSpec } from '../host/network/option.js';
import type { LinkShape } from '../host/replica/link-shaper.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const defaultMemoryBytes = 128 * 1024 * 1024;

/**
 * The tier a machine runs on when --cpu is not given: the faster one, which passes the whole
 * suite (issue 13). The machine's own default (MachineOptions) stays the interpreter, the reference.
 */
export const defaultCpuMode: CpuMode = 'wasm';
/**
 * Names the tier used when --cpu is not given, so that a whole test run (its processes, and
 * the replicas that pair forks, which inherit the environment) can run on another tier.
 */
export const cpuEnvironmentVariable = 'UNDERSTUDY_CPU';

/** The tier when --cpu is not given: $UNDERSTUDY_CPU when set, otherwise the default. */
export function defaultCpu(environment: NodeJS.ProcessEnv = process.env): CpuMode {
  const named = environment[cpuEnvironmentVariable];
  if (named === undefined || named === '') return defaultCpuMode;
  const cpu = cpuModes.find((mode) => mode === named);
  if (cpu === undefined) throw new UsageError(`${cpuEnvironmentVariable} must be ${cpuModes.join(', ')}, not "${named}"`);
  return cpu;
}

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
  --cpu wasm|jit|interp|lockstep  wasm: hot guest code compiled to WebAssembly (default);
                       jit: compiled to JavaScript; interp: the interpreter alone (the
                       reference); lockstep: jit checked against the interpreter after every
                       translated block (slow; for tests and debugging). Without --cpu,
                       ${cpuEnvironmentVariable} (when set) chooses
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
  cpu: { type: 'string' },
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
  values: { kernel?: string | undefined; guest?: string | undefined; initrd?: string | undefined; append?: string | undefined; memory?: string | undefined; clock?: string | undefined; cpu?: string | undefined },
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
  const cpu = values.cpu === undefined ? defaultCpu() : cpuModes.find((mode) => mode === values.cpu);
  if (cpu === undefined) throw new UsageError(`--cpu must be ${cpuModes.join(', ')}, not "${values.cpu}"`);
  if (guest === 'linux' && disks.length === 0) disks.push({ path: linux.dataDisk, readOnly: false });
  const settings: MachineSettings = {
    guest,
    kernel: values.kernel ?? linux.kernel,
    bootargs: values.append ?? defaultBootargs,
    disks,
    memoryBytes: values.memory === undefined ? defaultMemoryBytes : parseSize(values.memory),
    clock,
    cpu,
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
const digestRange = { min: 0, max: digestEveryEpochsMax, unit: 'epochs' };

export const replicationOptionsHelp = `replication options (pair, primary, backup):
  --epoch N                    instructions per epoch, ${epochRange.min} to ${epochRange.max} (default ${defaultReplicationOptions.epochInstructions})
  --protocol relaxed|original  relaxed (default): outputs wait for the backup's acknowledgement,
                               the guest runs on; original: the primary waits at every epoch end
  --fixed-epochs               every epoch ends after exactly --epoch instructions, as in the
                               paper (default: a boundary with nothing to deliver is skipped,
                               up to ${epochMergeMax} epochs; interrupts stay on the epoch grid)
  --reads-in-log               disk reads' data travels in the log to the backups (default: each
                               backup reads it from the shared disk itself, before it acknowledges;
                               for storage whose hosts may briefly read stale data, as NFS may)
  --pending-io reissue|uncertain  at failover, I/O in flight is re-issued (default; disk writes
                               then complete to the guest before the backup's acknowledgement) or
                               completed with an error for the guest's driver to retry
  --digest-every K             every K epochs' instructions the backup compares a digest of its
                               machine's state with the primary's; a difference stops it
                               (divergence); 0: never
                               (default: about every ${digestIntervalInstructionsDefault / 1e6} million instructions, ${defaultReplicationOptions.digestEveryEpochs} epochs
                               at the default epoch; both replicas must agree)
  --failure-timeout MS         declare the peer failed after this much silence (default ${defaultReplicationOptions.failureTimeoutMs})
  --join-timeout MS            give up a join (state transfer) after this much silence
                               (default ${defaultReplicationOptions.joinTimeoutMs}; at least the failure timeout)
  --catch-up-bound MS          lag control: when the backup would take longer than this to
                               replay what it holds, the primary slows the guest until it has
                               caught up (default: the failure timeout)
  --backups N                  t: a primary keeps up to N backups (1 to ${backupsMax}; default 1);
                               outputs wait for every one that follows. pair runs N backups:
                               the VM survives N failures at once
  --stop-and-copy              a backup joining a running guest gets the whole state with the
                               guest paused (default: its RAM is copied while the guest runs,
                               which pauses only for the pages written meanwhile)
  --arbiter DIR|etcd://HOST:PORT[,HOST:PORT...]/PREFIX
                               the go-live test-and-set: a shared directory (default: beside
                               the first disk image), or an etcd cluster (compare-and-swap on
                               the generation under PREFIX)
  --status-port N              serve the status view as JSON on 127.0.0.1:N
  --verbose                    log the protocol's events on stderr
  --trace-io                   at the end, where the primary's disk requests spent their time
                               (round trip to the backup, release, host I/O, delivery to the
                               guest; implies --verbose)
  --on-unprotected CMD         run CMD (with /bin/sh) whenever the VM becomes unprotected; the
                               reason is in $UNDERSTUDY_REASON
  --tls DIR                    secure the replication channel with mutual TLS 1.3, with this
                               replica's keys from \`understudy keys init\` (ca.crt, replica.crt,
                               replica.key); pair makes keys for the run by default
  --insecure                   plain TCP: anyone who reaches the port can join and read the
                               guest's memory (primary and backup need --tls or --insecure)
  --link-rate MBIT             (testing and benchmarks) a slower link: what this replica sends
                               leaves at MBIT Mbit/s at most (a token bucket; e.g. 10 for the
                               paper's Ethernet, 155 for its ATM); order is kept
  --link-latency MS            (testing and benchmarks) and arrives MS ms later (one way; each
                               replica delays what it sends, so a round trip takes 2 x MS)
`;

export const primaryOptionsHelp = `primary options:
  --listen HOST:PORT           where backups connect (required); the guest runs at once, not
                               protected, until one joins
  --wait-for-backup            wait for the first backup before the guest starts
`;

export const backupOptionsHelp = `backup options:
  --connect HOST:PORT          the primary (required)
  --listen HOST:PORT           once promoted, take a backup of its own here (so that the VM can
                               be protected again after a failover)
  --connect-timeout MS         keep trying to reach it this long (default 15000)
`;

export const standbyOptionsHelp = `standby options:
  --connect HOST:PORT[,HOST:PORT...]
                               the replicas' addresses (a primary's --listen, a backup's
                               --listen): the standby becomes the backup of whichever runs the
                               VM without one, whenever that happens (required)
  --listen HOST:PORT           once promoted, take a backup of its own here (required)
`;

export const pairOptionsHelp = `pair options:
  --kill-primary-after MS      SIGKILL the primary this long after the backup has joined
  --kill-backup-after MS       SIGKILL the backup this long after it has joined
  --kill-primary-every MS      SIGKILL whichever replica is the primary this long after every
                               join (with --backups N: once all N follow; new backups are
                               started after each failure)
  --kill-backup-every MS       the same for the backup
                               (on a terminal: Ctrl-A k kills the primary, Ctrl-A b the backup,
                               Ctrl-A x quits)
`;

export const replicationOptionSpec = {
  epoch: { type: 'string' },
  'digest-every': { type: 'string' },
  protocol: { type: 'string' },
  'fixed-epochs': { type: 'boolean' },
  'reads-in-log': { type: 'boolean' },
  'pending-io': { type: 'string' },
  'failure-timeout': { type: 'string' },
  'join-timeout': { type: 'string' },
  'stop-and-copy': { type: 'boolean' },
  'catch-up-bound': { type: 'string' },
  backups: { type: 'string' },
  arbiter: { type: 'string' },
  'status-port': { type: 'string' },
  verbose: { type: 'boolean' },
  'trace-io': { type: 'boolean' },
  tls: { type: 'string' },
  insecure: { type: 'boolean' },
  'on-unprotected': { type: 'string' },
  'link-rate': { type: 'string' },
  'link-latency': { type: 'string' },
} as const;

export interface ReplicationSettings {
  options: ReplicationOptions;
  /** --tls DIR, --insecure, or neither (pair then makes keys for the run). */
  channel: { kind: 'tls'; directory: string } | { kind: 'insecure' } | undefined;
  arbiter: string | undefined;
  statusPort: number | undefined;
  verbose: boolean;
  /** --trace-io: the primary reports where its disk requests' time went. */
  traceIo: boolean;
  onUnprotected: string | undefined;
  /** --link-rate, --link-latency: the channel's sending side slowed down (undefined: as fast as it goes). */
  linkShape: LinkShape | undefined;
}

export function replicationSettings(values: {
  epoch?: string | undefined;
  'digest-every'?: string | undefined;
  protocol?: string | undefined;
  'fixed-epochs'?: boolean | undefined;
  'reads-in-log'?: boolean | undefined;
  'pending-io'?: string | undefined;
  'failure-timeout'?: string | undefined;
  'join-timeout'?: string | undefined;
  'stop-and-copy'?: boolean | undefined;
  'catch-up-bound'?: string | undefined;
  backups?: string | undefined;
  arbiter?: string | undefined;
  'status-port'?: string | undefined;
  verbose?: boolean | undefined;
  'trace-io'?: boolean | undefined;
  tls?: string | undefined;
  insecure?: boolean | undefined;
  'on-unprotected'?: string | undefined;
  'link-rate'?: string | undefined;
  'link-latency'?: string | undefined;
}): ReplicationSettings {
  if (values.tls !== undefined && values.insecure === true) throw new UsageError('--tls and --insecure exclude each other');
  const protocol = values.protocol ?? defaultReplicationOptions.protocol;
  if (protocol !== 'relaxed' && protocol !== 'original') throw new UsageError(`--protocol must be relaxed or original, not "${protocol}"`);
  const pendingIo = values['pending-io'] ?? defaultReplicationOptions.pendingIo;
  if (pendingIo !== 'reissue' && pendingIo !== 'uncertain') throw new UsageError(`--pending-io must be reissue or uncertain, not "${pendingIo}"`);
  const failureTimeoutMs = values['failure-timeout'] === undefined ? defaultReplicationOptions.failureTimeoutMs : parsePositive(values['failure-timeout'], '--failure-timeout');
  // The lease and the heartbeat follow the failure timeout (see docs/REPLICATION.md).
  const leaseMs = Math.min(defaultReplicationOptions.leaseMs, failureTimeoutMs * 0.4);
  const epochInstructions = values.epoch === undefined ? defaultReplicationOptions.epochInstructions : parseInteger(values.epoch, '--epoch', epochRange);
  const options: ReplicationOptions = {
    epochInstructions,
    protocol,
    ...(values['fixed-epochs'] === true ? { fixedEpochs: true } : {}),
    ...(values['reads-in-log'] === true ? { readsInLog: true } : {}),
    pendingIo,
    failureTimeoutMs,
    leaseMs,
    heartbeatIntervalMs: leaseMs / 4,
    joinTimeoutMs:
      values['join-timeout'] === undefined ? Math.max(failureTimeoutMs, defaultReplicationOptions.joinTimeoutMs) : parsePositive(values['join-timeout'], '--join-timeout'),
    digestEveryEpochs: values['digest-every'] === undefined ? defaultDigestEveryEpochs(epochInstructions) : parseInteger(values['digest-every'], '--digest-every', digestRange),
    liveCopy: values['stop-and-copy'] !== true,
    ...(values['catch-up-bound'] === undefined ? {} : { catchUpBoundMs: parsePositive(values['catch-up-bound'], '--catch-up-bound') }),
    ...(values.backups === undefined ? {} : { backups: parseInteger(values.backups, '--backups', { min: 1, max: backupsMax, unit: 'backups' }) }),
  };
  try {
    validateOptions(options);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.arbiter?.startsWith('etcd://') === true) {
    try {
      parseEtcdAddress(values.arbiter);
    } catch (error) {
      throw new UsageError(`--arbiter: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return {
    options,
    channel: values.tls !== undefined ? { kind: 'tls', directory: values.tls } : values.insecure === true ? { kind: 'insecure' } : undefined,
    arbiter: values.arbiter,
    statusPort: values['status-port'] === undefined ? undefined : parseCount(values['status-port'], '--status-port'),
    verbose: (values.verbose ?? false) || values['trace-io'] === true,
    traceIo: values['trace-io'] ?? false,
    onUnprotected: values['on-unprotected'],
    linkShape: linkShape(values['link-rate'], values['link-latency']),
  };
}

/** --link-rate MBIT and --link-latency MS (a latency of 0 is allowed: a rate alone). */
function linkShape(rate: string | undefined, latency: string | undefined): LinkShape | undefined {
  if (rate === undefined && latency === undefined) return undefined;
  const latencyMs = latency === undefined ? 0 : Number(latency);
  if (latency !== undefined && (latency.trim() === '' || !Number.isFinite(latencyMs) || latencyMs < 0)) throw new UsageError(`--link-latency needs a number of ms, 0 or more, not "${latency}"`);
  return { rateMbitPerSecond: rate === undefined ? undefined : parsePositive(rate, '--link-rate'), latencyMs };
}

/**
 * The command line for a child: the parent's, minus what only the parent uses (`parentOnly`,
 * by name; `spec` says which of them take a value, as the next argument or after `=`).
 */
export function childArguments(argv: readonly string[], parentOnly: readonly string[], spec: Readonly<Record<string, { type: 'string' | 'boolean' }>>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : '';
    if (parentOnly.includes(name)) {
      if (!arg.includes('=') && spec[name]?.type === 'string') i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}
