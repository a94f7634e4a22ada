/**
 * `understudy demo` (the README's main job): Linux on a primary and a backup, and a failover.
 * On a terminal it is interactive (the shell is yours, Ctrl-A k kills the primary); otherwise
 * it plays a script.
 */
import { demoDisk, freePort, freshDemoDisk, say, scriptedDemo } from '../../host/demo.js';
import { pairCommand } from './pair.js';

export const demoHelp = `usage: understudy demo [machine options]

Boots Linux on a primary and a backup (two processes, TCP on loopback), kills the primary with
SIGKILL, and shows the same shell carrying on with its files, and a host client streaming
requests to the guest's web service on one connection that never notices. On a terminal the
shell is yours:
Ctrl-A k kills the primary, Ctrl-A x quits, \`poweroff\` ends the demo. Machine options (e.g.
--memory) are passed on to the pair.
`;

export async function demoCommand(argv: string[]): Promise<number> {
  freshDemoDisk();
  // The guest's web service, forwarded to the host by passt in the pair process.
  const httpPort = await freePort();
  const pairArguments = ['--guest', 'linux', '--disk', demoDisk, '--net', `user,hostfwd=tcp::${httpPort}-:80`, ...argv];
  if (process.stdin.isTTY === true && process.stdout.isTTY === true) {
    say('Linux on a primary and a backup (two processes, TCP on loopback). The shell is yours.');
    say('Ctrl-A k kills the primary with SIGKILL: the backup takes over and the shell goes on.');
    say('Ctrl-A x quits; `poweroff` in the shell ends the demo.');
    say(`The guest's web service is at http://127.0.0.1:${httpPort}/NAME (GET and PUT of /data/NAME; try curl -T FILE).`);
    return await pairCommand(pairArguments);
  }
  return await scriptedDemo(pairArguments, httpPort);
}
