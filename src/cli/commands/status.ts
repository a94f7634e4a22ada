/** `understudy status`: a replica's or a pair's status view, from its status port. */
import { fetchStatus, formatStatus } from '../../host/status.js';
import { parseCount, parseOptions, UsageError } from '../options.js';

export const statusHelp = `usage: understudy status --port N [--json]

Shows the status view of a replica or a pair started with --status-port N (on 127.0.0.1):
each replica's role, epoch, lag, log rate and generation, and the last failover.

status options:
  --port N             the replica's (or pair's) status port
  --json               the raw data, as JSON
`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, { port: { type: 'string' }, json: { type: 'boolean' } });
  if (values.port === undefined) throw new UsageError("status needs --port N (a replica's or a pair's --status-port)");
  const port = parseCount(values.port, '--port');
  const body = await fetchStatus(port).catch((error: unknown) => {
    throw new UsageError(`no status at 127.0.0.1:${port}: ${error instanceof Error ? error.message : String(error)}`);
  });
  if (values.json === true) {
    process.stdout.write(body);
    return 0;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new UsageError(`127.0.0.1:${port} did not answer with a status (is it an understudy status port?)`);
  }
  process.stdout.write(formatStatus(parsed));
  return 0;
}
