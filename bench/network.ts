/**
 * The network benchmark (issue 10): the Linux guest's filehttpd through `--net user` (passt),
 * from a host client on one keep-alive connection.
 *
 * 1. Requests per second and latency (median, p99) of small GETs: `run` against `pair`, relaxed
 *    and original, at two epoch lengths.
 * 2. The log traffic of a receive-heavy workload (PUTs of 64 KiB) under `pair`: what the frames
 *    cost on the replication link, per byte the client sent.
 * 3. The client-visible stall at failover: the primary SIGKILLed while the client sends GETs
 *    back to back; the stall is the longest wait for one answer around the kill.
 *
 *   node dist/bench/network.js [--seconds S] [--kills N]     (defaults: 10 s per row, 20 kills)
 *     [--rounds R]          every row R times, the rows taking turns; the table has the medians
 *     [--only a,b,...]      only these rows: run, relaxed, relaxed-20k, original, original-20k
 *     [--baseline DIR]      beside each row, the same row on another build (a checkout of the
 *                           code before a change, built): before and after in one run
 *
 * Prints a Markdown table for docs/BENCHMARKS.md. Not a timed test: it measures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeepAliveClient } from '../src/host/network/http-client.js';
import { ensureDataDisk } from '../src/host/linux-guest.js';
import { fetchStatus } from '../src/host/status.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin/understudy.js');
const argument = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
};
const seconds = argument('seconds', 10);
const kills = argument('kills', 20);
const rounds = argument('rounds', 1);
const textArgument = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? undefined : process.argv[at + 1];
};
const only = textArgument('only')?.split(',');
const baselineRoot = textArgument('baseline');
const bootTimeoutMs = 180_000;
const answerTimeoutMs = 60_000;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

interface Guest {
  readonly child: ChildProcess;
  readonly port: number;
  readonly statusPort: number | undefined;
  readonly directory: string;
  out: string;
  err: string;
  readonly exited: Promise<number | null>;
}

async function startGuest(command: string[], program = cli): Promise<Guest> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-net-'));
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 32 * 1024 * 1024);
  const port = await freePort();
  const statusPort = command[0] === 'pair' ? await freePort() : undefined;
  const args = [program, ...command, '--guest', 'linux', '--disk', image, '--net', `user,hostfwd=tcp::${port}-:80`, ...(statusPort === undefined ? [] : ['--status-port', String(statusPort)])];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const guest: Guest = { child, port, statusPort, directory, out: '', err: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout!.setEncoding('latin1').on('data', (chunk: string) => (guest.out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (guest.err += chunk));
  const deadline = performance.now() + bootTimeoutMs;
  while (!guest.out.includes('filehttpd serving')) {
    if (performance.now() > deadline || child.exitCode !== null) throw new Error(`the guest did not start its service:\n${guest.out.slice(-2000)}\n${guest.err.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return guest;
}

async function stopGuest(guest: Guest): Promise<void> {
  guest.child.stdin!.write('poweroff\n');
  const timer = setTimeout(() => process.kill(-guest.child.pid!, 'SIGKILL'), 60_000);
  await guest.exited;
  clearTimeout(timer);
  fs.rmSync(guest.directory, { recursive: true, force: true });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function logBytes(guest: Guest): Promise<number> {
  if (guest.statusPort === undefined) return 0;
  const status = JSON.parse(await fetchStatus(guest.statusPort)) as { primary?: { logBytesSent?: number } };
  return status.primary?.logBytesSent ?? 0;
}

interface Row {
  readonly name: string;
  readonly requestsPerSecond: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly logBytesPerClientByte: number | undefined;
}

async function measure(name: string, command: string[], program = cli): Promise<Row> {
  const guest = await startGuest(command, program);
  try {
    const client = await KeepAliveClient.connect(guest.port);
    const body = Buffer.alloc(1024, 0x61);
    await client.request('PUT', '/bench', body, answerTimeoutMs);
    // A second of warm-up, then the measured stretch.
    const latencies: number[] = [];
    const warmUntil = performance.now() + 1000;
    while (performance.now() < warmUntil) await client.request('GET', '/bench', undefined, answerTimeoutMs);
    const started = performance.now();
    while (performance.now() - started < seconds * 1000) {
      const at = performance.now();
      const answer = await client.request('GET', '/bench', undefined, answerTimeoutMs);
      if (answer.status !== 200 || answer.body.length !== body.length) throw new Error(`${name}: a wrong answer`);
      latencies.push(performance.now() - at);
    }
    const elapsed = performance.now() - started;
    // Receive-heavy: 64 KiB PUTs; the log bytes they cost per byte the client sent.
    let logBytesPerClientByte: number | undefined;
    if (guest.statusPort !== undefined) {
      const big = Buffer.alloc(64 * 1024, 0x62);
      const before = await logBytes(guest);
      for (let i = 0; i < 40; i++) await client.request('PUT', `/big-${i % 4}`, big, answerTimeoutMs);
      // The status is reported every 250 ms: wait for a report that covers the last PUT.
      await new Promise((resolve) => setTimeout(resolve, 600));
      logBytesPerClientByte = ((await logBytes(guest)) - before) / (40 * big.length);
    }
    client.close();
    latencies.sort((a, b) => a - b);
    return { name, requestsPerSecond: (latencies.length * 1000) / elapsed, medianMs: percentile(latencies, 50), p99Ms: percentile(latencies, 99), logBytesPerClientByte };
  } finally {
    await stopGuest(guest);
  }
}

/** One failover: GETs back to back, the primary killed after 50; the longest wait for an answer after the kill. */
async function failoverStall(): Promise<number> {
  const guest = await startGuest(['pair']);
  try {
    const client = await KeepAliveClient.connect(guest.port);
    await client.request('PUT', '/bench', Buffer.alloc(512, 0x63), answerTimeoutMs);
    let worst = 0;
    let killed = false;
    for (let i = 0; i < 150; i++) {
      const at = performance.now();
      if (i === 50) {
        const pid = primaryPid(guest.child.pid!);
        if (pid === undefined) throw new Error('no primary to kill');
        process.kill(pid, 'SIGKILL');
        killed = true;
      }
      const answer = await client.request('GET', '/bench', undefined, answerTimeoutMs);
      if (answer.status !== 200) throw new Error('a wrong answer after the kill');
      if (killed) worst = Math.max(worst, performance.now() - at);
    }
    if (client.lost !== undefined) throw new Error(`the connection was lost: ${client.lost}`);
    client.close();
    return worst;
  } finally {
    await stopGuest(guest);
  }
}

function primaryPid(pairPid: number): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pairPid) continue;
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[2] === 'primary') return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** The median of each figure over the rounds of one row. */
function medianRow(name: string, measured: readonly Row[]): Row {
  const mid = (pick: (row: Row) => number): number => percentile([...measured.map(pick)].sort((a, b) => a - b), 50);
  const logged = measured.every((row) => row.logBytesPerClientByte !== undefined);
  return {
    name,
    requestsPerSecond: mid((row) => row.requestsPerSecond),
    medianMs: mid((row) => row.medianMs),
    p99Ms: mid((row) => row.p99Ms),
    logBytesPerClientByte: logged ? mid((row) => row.logBytesPerClientByte!) : undefined,
  };
}

async function main(): Promise<void> {
  const configurations: [string, string, string[]][] = [
    ['run', 'run', ['run']],
    ['relaxed', 'pair, relaxed, epoch 100,000 (default)', ['pair']],
    ['relaxed-20k', 'pair, relaxed, epoch 20,000', ['pair', '--epoch', '20000']],
    ['original', 'pair, original, epoch 100,000', ['pair', '--protocol', 'original']],
    ['original-20k', 'pair, original, epoch 20,000', ['pair', '--protocol', 'original', '--epoch', '20000']],
  ];
  const chosen = configurations.filter(([key]) => only === undefined || only.includes(key));
  // Each row on this build and, with --baseline, on the other; every round measures each once.
  const builds: [string, string][] = [['', cli], ...(baselineRoot === undefined ? [] : [['baseline: ', path.join(path.resolve(baselineRoot), 'bin/understudy.js')] as [string, string]])];
  const measured = new Map<string, Row[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const [, name, command] of chosen) {
      for (const [prefix, program] of builds) {
        process.stderr.write(`round ${round} of ${rounds}: measuring ${prefix}${name}...\n`);
        const row = await measure(`${prefix}${name}`, command, program);
        process.stderr.write(`  ${row.requestsPerSecond.toFixed(0)} GET/s, median ${row.medianMs.toFixed(2)} ms\n`);
        measured.set(row.name, [...(measured.get(row.name) ?? []), row]);
      }
    }
  }
  const rows = [...measured].map(([name, list]) => medianRow(name, list));
  const baseFor = (row: Row): Row => rows.find((other) => other.name === (row.name.startsWith('baseline: ') ? 'baseline: run' : 'run')) ?? rows[0]!;
  if (rounds > 1) console.log(`medians of ${rounds} rounds`);
  console.log(`| configuration | GET/s | vs run | median ms | added median ms | p99 ms | log bytes per byte PUT |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (const row of rows) {
    const base = baseFor(row);
    const log = row.logBytesPerClientByte === undefined ? '—' : row.logBytesPerClientByte.toFixed(2);
    console.log(
      `| ${row.name} | ${row.requestsPerSecond.toFixed(0)} | ${(row.requestsPerSecond / base.requestsPerSecond).toFixed(2)} | ${row.medianMs.toFixed(2)} | ` +
        `${(row.medianMs - base.medianMs).toFixed(2)} | ${row.p99Ms.toFixed(2)} | ${log} |`,
    );
  }
  const stalls: number[] = [];
  for (let kill = 0; kill < kills; kill++) {
    process.stderr.write(`failover ${kill + 1} of ${kills}...\n`);
    stalls.push(await failoverStall());
  }
  stalls.sort((a, b) => a - b);
  if (stalls.length > 0) {
    console.log(`\nstall at failover (${stalls.length} kills of the primary): median ${percentile(stalls, 50).toFixed(0)} ms, p99 ${percentile(stalls, 99).toFixed(0)} ms, best ${stalls[0]!.toFixed(0)} ms`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
