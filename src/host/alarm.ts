/**
 * The alarm hook (`--on-unprotected CMD`): a command run by the shell whenever the VM becomes
 * unprotected, with the reason in its environment (UNDERSTUDY_EVENT=unprotected,
 * UNDERSTUDY_REASON, UNDERSTUDY_PID). It runs detached from the replica: a slow or failing
 * hook never holds up the guest, and what it prints goes to this process's stderr.
 */
import { spawn } from 'node:child_process';

export class UnprotectedAlarm {
  constructor(private readonly command: string | undefined) {}

  /** Runs the hook for `reason`, if there is one. */
  raise(reason: string): void {
    if (this.command === undefined) return;
    const child = spawn('/bin/sh', ['-c', this.command], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, UNDERSTUDY_EVENT: 'unprotected', UNDERSTUDY_REASON: reason, UNDERSTUDY_PID: String(process.pid) },
    });
    child.on('error', (error) => process.stderr.write(`understudy: --on-unprotected could not run: ${error.message}\n`));
    child.on('exit', (code) => {
      if (code !== 0) process.stderr.write(`understudy: --on-unprotected exited with status ${code}\n`);
    });
    child.unref();
  }
}
