/** `understudy keys init DIR`: a cluster CA and a certificate per replica, for --tls. */
import * as path from 'node:path';
import { initClusterKeys } from '../../host/replica/keys.js';
import { parseOptions, UsageError } from '../options.js';

export const keysHelp = `usage: understudy keys init DIR [--replicas NAME,...]

Makes the keys for a cluster's replication channel (mutual TLS 1.3): a certificate authority in
DIR (ca.crt, ca.key: keep ca.key off the replicas' hosts) and, for each replica, DIR/NAME/ with
ca.crt, replica.crt and replica.key, to copy to that replica's host and use as --tls DIR/NAME.
Any certificate the CA signed may join the cluster. Run it again with new names to add
replicas to the same cluster. Needs Debian's openssl.

keys options:
  --replicas NAME,...  the replicas to make certificates for (default replica1,replica2)
`;

export async function keysCommand(argv: string[]): Promise<number> {
  const [action, directory, ...rest] = argv;
  if (action !== 'init') throw new UsageError(action === undefined ? 'keys needs an action: keys init DIR' : `unknown keys action "${action}" (try: understudy keys --help)`);
  if (directory === undefined || directory.startsWith('-')) throw new UsageError('keys init needs a directory: keys init DIR');
  const { values } = parseOptions(rest, { replicas: { type: 'string' } });
  const names = (values.replicas ?? 'replica1,replica2').split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  if (names.length === 0) throw new UsageError('--replicas needs at least one name');
  const made = await Promise.resolve(initClusterKeys(directory, names));
  process.stdout.write(`cluster CA: ${path.join(directory, 'ca.crt')} (keep ${path.join(directory, 'ca.key')} safe, off the replicas' hosts)\n`);
  for (const replica of made) process.stdout.write(`replica keys: ${replica}/  ->  copy to its host, then: understudy primary|backup --tls ${replica} ...\n`);
  return 0;
}
