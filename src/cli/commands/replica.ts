/** `understudy primary` and `understudy backup`: one replica of a pair, in this process. */
import { runReplicaProcess } from '../../host/replica-process.js';
import { loadTlsIdentity } from '../../host/replica/keys.js';
import { parseEndpoint, type Endpoint } from '../../host/replica/transport.js';
import { machineOptionSpec, machineSettings, parseOptions, parsePositive, replicationOptionSpec, replicationSettings, UsageError } from '../options.js';

export function primaryCommand(argv: string[]): Promise<number> {
  return replicaCommand('primary', argv);
}

export function backupCommand(argv: string[]): Promise<number> {
  return replicaCommand('backup', argv);
}

async function replicaCommand(role: 'primary' | 'backup', argv: string[]): Promise<number> {
  const { values, tokens } = parseOptions(argv, {
    ...machineOptionSpec,
    ...replicationOptionSpec,
    listen: { type: 'string' },
    connect: { type: 'string' },
    'connect-timeout': { type: 'string' },
    'wait-for-backup': { type: 'boolean' },
    ipc: { type: 'boolean' },
  });
  const machine = machineSettings(values, tokens, role);
  const replication = replicationSettings(values);
  const address = role === 'primary' ? values.listen : values.connect;
  if (address === undefined) throw new UsageError(role === 'primary' ? 'primary needs --listen HOST:PORT' : 'backup needs --connect HOST:PORT');
  const endpointOption = (option: '--listen' | '--connect', text: string): Endpoint => {
    try {
      return parseEndpoint(text);
    } catch (error) {
      throw new UsageError(`${option}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const endpoint = endpointOption(role === 'primary' ? '--listen' : '--connect', address);
  const listenWhenPromoted = role === 'backup' && values.listen !== undefined ? endpointOption('--listen', values.listen) : undefined;
  const channel = replication.channel;
  if (channel === undefined) {
    throw new UsageError(`${role} needs --tls DIR (this replica's keys, from: understudy keys init DIR --replicas NAME,...) or --insecure (plain TCP)`);
  }
  return await runReplicaProcess({
    role,
    endpoint,
    listenWhenPromoted,
    security: channel.kind === 'tls' ? { kind: 'tls', identity: loadTlsIdentity(channel.directory) } : { kind: 'insecure' },
    machine,
    options: replication.options,
    arbiter: replication.arbiter,
    statusPort: replication.statusPort,
    connectTimeoutMs: values['connect-timeout'] === undefined ? undefined : parsePositive(values['connect-timeout'], '--connect-timeout'),
    verbose: replication.verbose,
    onUnprotected: replication.onUnprotected,
    waitForBackup: values['wait-for-backup'] === true,
    viaIpc: values.ipc === true && process.send !== undefined,
  });
}
