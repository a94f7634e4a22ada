/** `understudy pair`: a primary and its backups (`--backups N`, default 1) as processes on this host. */
import { runPair } from '../../host/pair.js';
import { childArguments, machineOptionSpec, machineSettings, parseOptions, parsePositive, replicationOptionSpec, replicationSettings } from '../options.js';

export async function pairCommand(argv: string[]): Promise<number> {
  const spec = {
    ...machineOptionSpec,
    ...replicationOptionSpec,
    'kill-primary-after': { type: 'string' },
    'kill-backup-after': { type: 'string' },
    'kill-primary-every': { type: 'string' },
    'kill-backup-every': { type: 'string' },
  } as const;
  const { values, tokens } = parseOptions(argv, spec);
  const replication = replicationSettings(values);
  return await runPair({
    machine: machineSettings(values, tokens, 'pair'),
    // The replicas get the machine and replication options as given; these are the pair's own.
    // The network back-end is the pair's too: the replicas reach it through the pair's switch.
    replicaArguments: childArguments(argv, ['kill-primary-after', 'kill-backup-after', 'kill-primary-every', 'kill-backup-every', 'arbiter', 'status-port', 'tls', 'insecure', 'on-unprotected', 'net'], spec),
    channel: replication.channel,
    arbiter: replication.arbiter,
    statusPort: replication.statusPort,
    backups: replication.options.backups ?? 1,
    verbose: replication.verbose,
    onUnprotected: replication.onUnprotected,
    killPrimaryAfterMs: values['kill-primary-after'] === undefined ? undefined : parsePositive(values['kill-primary-after'], '--kill-primary-after'),
    killBackupAfterMs: values['kill-backup-after'] === undefined ? undefined : parsePositive(values['kill-backup-after'], '--kill-backup-after'),
    killPrimaryEveryMs: values['kill-primary-every'] === undefined ? undefined : parsePositive(values['kill-primary-every'], '--kill-primary-every'),
    killBackupEveryMs: values['kill-backup-every'] === undefined ? undefined : parsePositive(values['kill-backup-every'], '--kill-backup-every'),
  });
}
