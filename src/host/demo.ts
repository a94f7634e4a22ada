/**
 * `understudy demo` (the README's main job): Linux on a primary and a backup, two processes
 * talking TCP on loopback, and a failover. On a terminal the CLI runs an ordinary `pair` after
 * a few words; otherwise this script plays it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { projectRoot } from './guest-image.js';
import { fetchStatus } from './status.js';
import { KeepAliveClient } from './network/http-client.js';

const prompt = 'understudy$ ';
const stepTimeoutMs = 120_000;

/** The demo's data disk. */
export const demoDisk = path.join(projectRoot, '.cache/linux/demo.img');

/** A fresh data disk every run (made again on first use), so what the demo shows is what it did. */
export function freshDemoDisk(): void {
  fs.rmSync(demoDisk, { force: true });
}

/** A line of the demo's own narration, in bold on a terminal. */
export function say(line: string): void {
  process.stdout.write(process.stdout.isTTY === true ? `\x1b[1m== ${line}\x1b[0m\n` : `== ${line}\n`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

interface DemoStatus {
  primary?: { pid?: number; role?: string } | null;
  backup?: { role?: string } | null;
  failover?: { consoleBytesRepeated?: number } | null;
}

async function pairStatus(port: number): Promise<DemoStatus | undefined> {
  try {
    return JSON.parse(await fetchStatus(port)) as DemoStatus;
  } catch {
    return undefined;
  }
}

/** The client's view: how its one connection fared, for the summary. */
interface ClientView {
  requests: number;
  errors: string[];
  longestMs: number;
  stopped: boolean;
}

/**
 * A host client on ONE keep-alive connection to the guest's filehttpd: PUT /demo-N, then GET it
 * back and compare, without pause, until told to stop; every 50th exchange is printed beside
 * the guest's console, and what went wrong (nothing, we hope) is kept.
 */
async function streamRequests(port: number, view: ClientView): Promise<void> {
  const client = await KeepAliveClient.connect(port);
  try {
    for (let n = 1; !view.stopped; n++) {
      const body = Buffer.from(`file ${n}, written by the host's client\n`);
      const started = performance.now();
      const put = await client.request('PUT', `/demo-${n}`, body, stepTimeoutMs);
      const got = await client.request('GET', `/demo-${n}`, undefined, stepTimeoutMs);
      const tookMs = performance.now() - started;
      view.requests += 2;
      view.longestMs = Math.max(view.longestMs, tookMs);
      if (put.status !== 200 || got.status !== 200 || !got.body.equals(body)) view.errors.push(`exchange ${n}: PUT ${put.status}, GET ${got.status}`);
      if (n % 50 === 0 || tookMs > 100) process.stdout.write(`   client | PUT and GET /demo-${n}: ${got.status === 200 && got.body.equals(body) ? 'ok' : 'WRONG'} in ${tookMs.toFixed(1)} ms\n`);
    }
    if (client.lost !== undefined) view.errors.push(`the connection was lost: ${client.lost}`);
  } catch (error) {
    view.errors.push(error instanceof Error ? error.message : String(error));
  } finally {
    client.close();
  }
}

/**
 * The demo without a terminal (a pipe, CI): `understudy pair` with `pairArguments` as a child
 * process, driven by a script: boot, write a file, start a host client streaming requests to
 * the guest's web service (through `httpPort`, forwarded by passt in the pair process), kill
 * the primary, show the shell still working and the file intact, the client's view beside it,
 * power off.
 */
export async function scriptedDemo(pairArguments: readonly string[], httpPort: number): Promise<number> {
  fs.mkdirSync(path.join(projectRoot, '.cache/linux'), { recursive: true });
  const statusPort = await freePort();
  say('understudy demo: unmodified Linux on a fault-tolerant pair (a primary and a backup, two processes)');
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/understudy.js'), 'pair', ...pairArguments, '--status-port', String(statusPort)], {
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
  /** Waits until the pair's status shows a primary protected by a backup. */
  const waitForProtection = async (): Promise<DemoStatus> => {
    const deadline = Date.now() + stepTimeoutMs;
    for (;;) {
      const status = await pairStatus(statusPort);
      if (status?.primary?.role === 'primary' && status.backup?.role === 'backup') return status;
      if (child.exitCode !== null) throw new Error(`the pair stopped (status ${child.exitCode}) before the backup joined`);
      if (Date.now() > deadline) throw new Error(`the backup has not joined after ${stepTimeoutMs / 1000} s: the guest is not protected`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  try {
    await waitFor('understudy: /data mounted', 0);
    await waitFor(prompt, console.lastIndexOf('understudy: /data mounted'));
    await waitForProtection();
    say('Linux booted on the primary; the backup replays it one epoch behind. Some work:');
    await command('echo the primary is running this shell');
    await command('echo written before the failover > /data/before.txt');
    await command('cat /data/before.txt');
    await command('sync');
    say(`a client on the host streams PUT and GET to the guest's web service (one keep-alive connection to 127.0.0.1:${httpPort})`);
    const view: ClientView = { requests: 0, errors: [], longestMs: 0, stopped: false };
    const streaming = streamRequests(httpPort, view);
    while (view.requests < 200 && view.errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    // Only a protected pair survives the kill: look again just before it.
    const status = await waitForProtection();
    const pid = status.primary?.pid;
    if (pid === undefined) throw new Error('no status from the pair');
    say(`killing the primary (pid ${pid}) with SIGKILL`);
    const before = errors.length;
    const consoleAtKill = console.length;
    process.kill(pid, 'SIGKILL');
    await waitFor('went live', before, () => errors);
    // The new primary first repeats the console output the old one may not have shown (P8):
    // let it all arrive, so that an old prompt in it is not taken for the next command's.
    const repeated = (await pairStatus(statusPort))?.failover?.consoleBytesRepeated ?? 0;
    while (console.length < consoleAtKill + repeated) {
      if (child.exitCode !== null) throw new Error(`the pair stopped (status ${child.exitCode}) after the failover`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    say('the backup is the primary now; the same shell, the same files:');
    await command('cat /data/before.txt');
    await command('echo written after the failover > /data/after.txt');
    await command('ls /data');
    await command('uptime');
    const requestsBefore = view.requests;
    while (view.requests < requestsBefore + 200 && view.errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    view.stopped = true;
    await streaming;
    await command('ls /data | grep -c demo-');
    say(
      view.errors.length === 0
        ? `the client's view: ${view.requests} requests on one connection, never reconnected, every answer right; the longest exchange took ${view.longestMs.toFixed(0)} ms (the failover)`
        : `the client saw errors: ${view.errors.join('; ')}`,
    );
    // pair starts a new backup after the failover: the VM is protected again.
    await waitForProtection();
    say('a new backup has joined the new primary: the VM is protected again');
    say('powering off');
    child.stdin.write('poweroff\n');
    const code = await exited;
    say(code === 0 ? 'done: the guest powered off normally after the failover' : `the pair exited with ${code}`);
    return view.errors.length > 0 ? 1 : (code ?? 1);
  } catch (error) {
    child.kill('SIGKILL');
    process.stderr.write(`understudy demo: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
