/**
 * `npm run bench:reprotect`: how fast a pair is protected again after a failure, and what a
 * join costs, with real processes on loopback.
 *
 * 1. Failover to protected again: `pair` running the gated disk workload, `test-failover`
 *    from the status port, then polling the status (every 10 ms) until a new backup follows the
 *    promoted primary. Times from the control call: the backup live, protected again.
 * 2. Joins of a running Linux guest (128 MiB and 1 GiB of RAM) while it runs its disk
 *    benchmark: `restart-backup`, then the time until protected again and the guest's pause,
 *    from the primary's log; with the live copy (RAM copied while the guest runs, the pause
 *    only for what was written meanwhile) and with --stop-and-copy (the whole state at one
 *    boundary while the guest waits), one after the other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStatus, postControl, type PairStatus } from '../src/host/status.js';
import { ensureDataDisk } from '../src/host/linux-guest.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin/understudy.js');
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 8);

interface Pair {
  readonly child: ChildProcess;
  readonly port: number;
  stdout: string;
  stderr: string;
}

function freePort(): number {
  // Ports from a range kept apart per process; a collision fails loudly at listen.
  return 20_000 + ((process.pid * 7 + Math.floor(Math.random() * 1000)) % 20_000);
}

function startPair(args: string[], port: number): Pair {
  const child = spawn(process.execPath, [cli, 'pair', ...args, '--status-port', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const pair: Pair = { child, port, stdout: '', stderr: '' };
  child.stdout!.setEncoding('latin1').on('data', (chunk: string) => (pair.stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (pair.stderr += chunk));
  return pair;
}

async function status(port: number): Promise<PairStatus | undefined> {
  return fetchStatus(port).then((text) => JSON.parse(text) as PairStatus, () => undefined);
}

/** Polls until the pair is protected by a backup other than `oldBackup`; returns when (ms). */
async function protectedAgain(port: number, except: ReadonlySet<number>, deadlineMs = 120_000): Promise<PairStatus> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    const view = await status(port);
    if (view?.protected === true && view.primary !== undefined && view.backup !== undefined && !except.has(view.primary.pid) && !except.has(view.backup.pid)) return view;
    if (performance.now() > deadline) throw new Error('not protected again in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function failoverToProtected(): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-'));
  const image = path.join(directory, 'disk.img');
  fs.writeFileSync(image, new Uint8Array(1 << 20));
  const port = freePort();
  const pair = startPair(['--kernel', path.join(root, 'guests/build/pair_gated.elf'), '--disk', image], port);
  const live: number[] = [];
  const again: number[] = [];
  try {
    const gone = new Set<number>();
    let view = await protectedAgain(port, gone);
    for (let round = 0; round < rounds; round++) {
      const failoversBefore = (pair.stderr.match(/went live/g) ?? []).length;
      gone.add(view.primary!.pid);
      const started = performance.now();
      await postControl(port, 'test-failover');
      let liveAt: number | undefined;
      for (;;) {
        if (liveAt === undefined && (pair.stderr.match(/went live/g) ?? []).length > failoversBefore) liveAt = performance.now() - started;
        const next = await status(port);
        if (next?.protected === true && next.backup !== undefined && next.primary !== undefined && !gone.has(next.primary.pid) && !gone.has(next.backup.pid)) {
          view = next;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      again.push(performance.now() - started);
      live.push(liveAt ?? NaN);
    }
  } finally {
    pair.child.kill('SIGKILL');
    fs.rmSync(directory, { recursive: true, force: true });
  }
  console.log(`failover to protected again, ${rounds} rounds (pair, gated disk workload, test-failover):`);
  console.log(`  backup live after: median ${median(live).toFixed(0)} ms, max ${Math.max(...live).toFixed(0)} ms`);
  console.log(`  protected again after: median ${median(again).toFixed(0)} ms, max ${Math.max(...again).toFixed(0)} ms (${again.map((ms) => ms.toFixed(0)).join(', ')})`);
}

async function linuxJoin(memory: string, liveCopy: boolean): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-'));
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 64 * 1024 * 1024);
  const port = freePort();
  const pair = startPair(['--guest', 'linux', '--disk', image, '--memory', memory, '--verbose', ...(liveCopy ? [] : ['--stop-and-copy'])], port);
  try {
    const deadline = performance.now() + 180_000;
    while (!pair.stdout.includes('understudy$ ')) {
      if (performance.now() > deadline || pair.child.exitCode !== null) throw new Error(`Linux did not boot:\n${pair.stderr.slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const first = await protectedAgain(port, new Set());
    // The guest writes, syncs and reads back while a new backup joins (a benchmark may wait a
    // while: whether the join fell inside the run is checked after, from the guest's output).
    pair.child.stdin!.write('diskbench 32\n');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const joinsBefore = (pair.stderr.match(/backup joined at epoch/g) ?? []).length;
    const started = performance.now();
    await postControl(port, 'restart-backup');
    await protectedAgain(port, new Set([first.backup!.pid]));
    const tookMs = performance.now() - started;
    const during = !pair.stdout.includes('diskbench: OK');
    while (!/diskbench: (OK|FAIL)/.test(pair.stdout)) await new Promise((resolve) => setTimeout(resolve, 50));
    if (!pair.stdout.includes('diskbench: OK')) throw new Error(`diskbench failed:\n${pair.stdout.slice(-1000)}`);
    const joins = [...pair.stderr.matchAll(/backup joined at epoch \d+ \((.*the guest paused (\d+) ms)\)/g)];
    const join = joins[joinsBefore];
    console.log(
      `join of a running Linux guest (${memory} RAM, ${during ? 'during' : 'AFTER'} diskbench 32, ${liveCopy ? 'live copy' : 'stop and copy'}): protected again ${tookMs.toFixed(0)} ms after restart-backup; ` +
        `guest paused ${join?.[2] ?? '?'} ms (${join?.[1] ?? '?'})`,
    );
  } finally {
    pair.child.kill('SIGKILL');
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

console.log(`understudy reprotection benchmark, ${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, Node ${process.version}`);
await failoverToProtected();
for (const memory of (process.env['BENCH_MEMORY'] ?? '128M,1G').split(',')) {
  await linuxJoin(memory, true);
  await linuxJoin(memory, false);
}
process.exit(0);
