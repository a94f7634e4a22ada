/** `understudy primary` and `understudy backup`: one replica of a pair, in this process. */
import { runReplicaProcess, runStandby, type ReplicaSettings } from '../../host/replica-process.js';
import { loadTlsIdentity } from '../../host/replica/keys.js';
import { parseEndpoint, type Endpoint } from '../../host/replica/transport.js';
import { machineOptionSpec, machineSettings, parseOptions, parsePositive, replicationOptionSpec, replicationSettings, UsageError } from '../options.js';

export function primaryCommand(argv: string[]): Promise<number> {
  return replicaCommand('primary', argv);
}

export function backupCommand(argv: string[]): Promise<number> {
  return replicaCommand('backup', argv);
}

export function standbyCommand(argv: string[]): Promise<number> {
  return replicaCommand('standby', argv);
}

/** `--connect` of a standby: the replicas' addresses, comma-separated. */
function parseEndpoints(option: string, text: string): Endpoint[] {
  const endpoints = text.split(',').filter((part) => part !== '');
  if (endpoints.length === 0) throw new UsageError(`${option} needs HOST:PORT[,HOST:PORT...]`);
  return endpoints.map((part) => {
    try {
      return parseEndpoint(part);
    } catch (error) {
      throw new UsageError(`${option}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
}

async function replicaCommand(command: 'primary' | 'backup' | 'standby', argv: string[]): Promise<number> {
  const role = command === 'primary' ? 'primary' : 'backup';
  const { values, tokens } = parseOptions(argv, {
    ...machineOptionSpec,
    ...replicationOptionSpec,
    listen: { type: 'string' },
    connect: { type: 'string' },
    'connect-timeout': { type: 'string' },
    'wait-for-backup': { type: 'boolean' },
    ipc: { type: 'boolean' },
  });
  const machine = machineSettings(values, tokens, command);
  const replication = replicationSettings(values);
  const address = role === 'primary' ? values.listen : values.connect;
  if (address === undefined) {
    throw new UsageError(command === 'primary' ? 'primary needs --listen HOST:PORT' : command === 'backup' ? 'backup needs --connect HOST:PORT' : 'standby needs --connect HOST:PORT[,HOST:PORT...] (the replicas it may back up)');
  }
  if (command === 'standby' && values.listen === undefined) throw new UsageError('standby needs --listen HOST:PORT (where it takes a backup of its own once promoted)');
  const endpointOption = (option: '--listen' | '--connect', text: string): Endpoint => {
    try {
      return parseEndpoint(text);
    } catch (error) {
      throw new UsageError(`${option}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const replicas = command === 'standby' ? parseEndpoints('--connect', address) : undefined;
  const endpoint = replicas?.[0] ?? endpointOption(role === 'primary' ? '--listen' : '--connect', address);
  const listenWhenPromoted = role === 'backup' && values.listen !== undefined ? endpointOption('--listen', values.listen) : undefined;
  const channel = replication.channel;
  if (channel === undefined) {
    throw new UsageError(`${role} needs --tls DIR (this replica's keys, from: understudy keys init DIR --replicas NAME,...) or --insecure (plain TCP)`);
  }
  const settings: ReplicaSettings = {
    role,
    endpoint,
    listenWhenPromoted,
    security: {
      ...(channel.kind === 'tls' ? { kind: 'tls', identity: loadTlsIdentity(channel.directory) } : { kind: 'insecure' }),
      ...(replication.linkShape === undefined ? {} : { linkShape: replication.linkShape }),
    },
    machine,
    options: replication.options,
    arbiter: replication.arbiter,
    statusPort: replication.statusPort,
    connectTimeoutMs: values['connect-timeout'] === undefined ? undefined : parsePositive(values['connect-timeout'], '--connect-timeout'),
    verbose: replication.verbose,
    traceIo: replication.traceIo,
    onUnprotected: replication.onUnprotected,
    waitForBackup: values['wait-for-backup'] === true,
    viaIpc: values.ipc === true && process.send !== undefined,
  };
  return replicas === undefined ? await runReplicaProcess(settings) : await runStandby(settings, replicas);
}
