/**
 * `understudy demo` (the README's main job): Linux on a primary and a backup, two processes
 * talking TCP on loopback, and a failover.
 *
 * On a terminal it is interactive: the shell is yours, Ctrl-A k kills the primary with
 * SIGKILL and the backup carries on. Otherwise (a pipe, CI) it plays a script: boot, write a
 * file, kill the primary, show the shell still working and the file intact, power off.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { pairCommand } from './replicate.js';
import { projectRoot } from './machine-options.js';

const prompt = 'understudy$ ';
const stepTimeoutMs = 120_000;

export async function demoCommand(argv: string[]): Promise<number> {
  const disk = path.join(projectRoot, '.cache/linux/demo.img');
  // A fresh data disk every run (made again on first use), so what the demo shows is what it did.
  fs.rmSync(disk, { force: true });
  const machine = ['--guest', 'linux', '--disk', disk, ...argv];
  if (process.stdin.isTTY === true && process.stdout.isTTY === true) {
    say('Linux on a primary and a backup (two processes, TCP on loopback). The shell is yours.');
    say('Ctrl-A k kills the primary with SIGKILL: the backup takes over and the shell goes on.');
    say('Ctrl-A x quits; `poweroff` in the shell ends the demo.');
    return await pairCommand(machine);
  }
  return await scriptedDemo(machine);
}

function say(line: string): void {
  process.stdout.write(process.stdout.isTTY === true ? `\x1b[1m== ${line}\x1b[0m\n` : `== ${line}\n`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

async function pairStatus(port: number): Promise<{ primary?: { pid?: number } } | undefined> {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: '/status', timeout: 1000 }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          try {
            resolve(JSON.parse(text) as { primary?: { pid?: number } });
          } catch {
            resolve(undefined);
          }
        });
      })
      .on('error', () => resolve(undefined));
  });
}

async function scriptedDemo(machine: string[]): Promise<number> {
  fs.mkdirSync(path.join(projectRoot, '.cache/linux'), { recursive: true });
  const statusPort = await freePort();
  say('understudy demo: unmodified Linux on a fault-tolerant pair (a primary and a backup, two processes)');
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/understudy.js'), 'pair', ...machine, '--status-port', String(statusPort)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let console = '';
  let errors = '';
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    for (const waiter of waiters.splice(0)) waiter();
  };
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (chunk: string) => {
    console += chunk;
    process.stdout.write(chunk);
    wake();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    errors += chunk;
    process.stdout.write(chunk);
    wake();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    wake();
    resolve(code);
  }));
  const waitFor = async (text: string, from: number, where: () => string = () => console): Promise<number> => {
    const deadline = Date.now() + stepTimeoutMs;
    for (;;) {
      const index = where().indexOf(text, from);
      if (index >= 0) return index + text.length;
      if (child.exitCode !== null) throw new Error(`the pair stopped (status ${child.exitCode}) before "${text.trim()}" appeared`);
      if (Date.now() > deadline) throw new Error(`no "${text.trim()}" after ${stepTimeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  const command = async (line: string): Promise<void> => {
    const from = console.length;
    child.stdin.write(`${line}\n`);
    await waitFor(prompt, from);
  };
  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    await waitFor('understudy: /data mounted', 0);
    await waitFor(prompt, console.lastIndexOf('understudy: /data mounted'));
    say('Linux booted on the primary; the backup replays it one epoch behind. Some work:');
    await command('echo the primary is running this shell');
    await command('echo written before the failover > /data/before.txt');
    await command('cat /data/before.txt');
    await command('sync');
    const status = await pairStatus(statusPort);
    const pid = status?.primary?.pid;
    if (pid === undefined) throw new Error('no status from the pair');
    say(`killing the primary (pid ${pid}) with SIGKILL`);
    const before = errors.length;
    process.kill(pid, 'SIGKILL');
    await waitFor('went live', before, () => errors);
    await pause(300);
    say('the backup is the primary now; the same shell, the same files:');
    await command('cat /data/before.txt');
    await command('echo written after the failover > /data/after.txt');
    await command('ls /data');
    await command('uptime');
    say('powering off');
    child.stdin.write('poweroff\n');
    const code = await exited;
    say(code === 0 ? 'done: the guest powered off normally after the failover' : `the pair exited with ${code}`);
    return code ?? 1;
  } catch (error) {
    child.kill('SIGKILL');
    process.stderr.write(`understudy demo: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
