/** `understudy status`: a replica's or a pair's status view, from its status port. */
import { controlActions, fetchStatus, formatStatus, postControl, type ControlAction } from '../../host/status.js';
import { parseCount, parseOptions, UsageError } from '../options.js';

export const statusHelp = `usage: understudy status --port N [--json] [test-failover | restart-backup | stop]

Shows the status view of a replica or a pair started with --status-port N (on 127.0.0.1):
whether the VM is protected (and why not), each replica's role, epoch, lag, log rate and
generation, and the last failover. With an action (a pair's port):
  test-failover        kill the primary's execution now; the backup takes over (only when
                       protected), and a new backup follows
  restart-backup       stop the backup; a new one joins
  stop                 power the whole VM off: every replica stops

status options:
  --port N             the replica's (or pair's) status port
  --json               the raw data, as JSON
`;

export async function statusCommand(argv: string[]): Promise<number> {
  const action = argv.find((arg) => !arg.startsWith('-') && (controlActions as readonly string[]).includes(arg));
  const { values } = parseOptions(action === undefined ? argv : argv.filter((arg) => arg !== action), { port: { type: 'string' }, json: { type: 'boolean' } });
  if (values.port === undefined) throw new UsageError("status needs --port N (a replica's or a pair's --status-port)");
  const port = parseCount(values.port, '--port');
  if (action !== undefined) {
    const answer = await postControl(port, action as ControlAction).catch((error: unknown) => {
      throw new UsageError(`no status at 127.0.0.1:${port}: ${error instanceof Error ? error.message : String(error)}`);
    });
    process.stdout.write(`${answer.message}\n`);
    return answer.ok ? 0 : 1;
  }
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
