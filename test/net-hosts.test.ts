/**
 * Two hosts on one LAN, simulated with network namespaces the test makes and removes itself
 * (iproute2; needs root, as CI has): a "switch" namespace with a bridge; hosts A and B, each
 * with its own bridge holding a veth to the switch and a TAP device for its replica; a client
 * namespace C. The primary runs in A (`--net tap,ifname=tapA`), the backup in B (`tapB`), both
 * with the guest's one MAC and a static address on the kernel command line; the replication
 * channel runs over the LAN, the disk image and the arbiter's directory are shared (the paper's
 * dual-hosted disk). A client in C talks to filehttpd on one keep-alive connection; the
 * primary is SIGKILLed mid-stream; the backup announces the MAC from B (RARP and a gratuitous
 * ARP), the switch learns the new port, and the client's connection carries on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cliPath, repoRoot } from './helpers.js';
import { defaultBootargs, ensureDataDisk } from '../src/host/linux-guest.js';
import { scratchDirectory } from './support/replica-processes.js';
import { tapRelayPath } from '../src/host/network/backends.js';

const kernel = path.join(repoRoot, '.cache/linux/Image');
const bootTimeoutMs = 180_000;
/** The LAN: a documentation-free range of our own, inside namespaces this test made. */
const lan = { hostA: '10.213.0.1', hostB: '10.213.0.2', client: '10.213.0.100', guest: '10.213.0.10', prefix: 24 } as const;
const replicationPort = 7000;
const requests = 80;
const killAfter = 30;

function ip(...args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

function canMakeNamespaces(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  if (spawnSync('ip', ['-V']).status !== 0) return 'needs iproute2';
  if (!fs.existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  if (!fs.existsSync(kernel)) return 'the Linux guest is not built (linux/build.sh)';
  if (!fs.existsSync(tapRelayPath)) return 'the TAP relay is not built (make -C native)';
  return false;
}

/** The namespaces and links; each namespace goes into `created` as soon as it exists, for the clean-up. */
function buildLan(tag: string, created: string[]): { sw: string; a: string; b: string; c: string } {
  const ns = { sw: `us-sw-${tag}`, a: `us-a-${tag}`, b: `us-b-${tag}`, c: `us-c-${tag}` };
  for (const name of Object.values(ns)) {
    ip('netns', 'add', name);
    created.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
  }
  ip('-n', ns.sw, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', ns.sw, 'link', 'set', 'br0', 'up');
  // A veth from each host to the switch's bridge.
  for (const [side, name] of [['a', ns.a], ['b', ns.b], ['c', ns.c]] as const) {
    ip('link', 'add', `${side}-${tag}`, 'netns', name, 'type', 'veth', 'peer', 'name', `sw${side}-${tag}`, 'netns', ns.sw);
    ip('-n', ns.sw, 'link', 'set', `sw${side}-${tag}`, 'master', 'br0', 'up');
  }
  // Hosts A and B: a bridge with the LAN veth and the replica's TAP; the host's address on it.
  for (const [side, name, address, tap] of [['a', ns.a, lan.hostA, 'tapA'], ['b', ns.b, lan.hostB, 'tapB']] as const) {
    ip('-n', name, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', name, 'link', 'set', `${side}-${tag}`, 'master', 'br0', 'up');
    ip('-n', name, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    ip('-n', name, 'link', 'set', tap, 'master', 'br0', 'up');
    ip('-n', name, 'addr', 'add', `${address}/${lan.prefix}`, 'dev', 'br0');
    ip('-n', name, 'link', 'set', 'br0', 'up');
  }
  ip('-n', ns.c, 'addr', 'add', `${lan.client}/${lan.prefix}`, 'dev', `c-${tag}`);
  ip('-n', ns.c, 'link', 'set', `c-${tag}`, 'up');
  return ns;
}

interface Spawned {
  readonly child: ChildProcess;
  out: string;
  err: string;
  readonly exited: Promise<number | null>;
}

function inNamespace(namespace: string, args: string[], input: 'pipe' | 'ignore' = 'ignore'): Spawned {
  const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, ...args], { cwd: repoRoot, stdio: [input, 'pipe', 'pipe'] });
  const spawned: Spawned = { child, out: '', err: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout!.setEncoding('latin1').on('data', (chunk: string) => (spawned.out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (spawned.err += chunk));
  return spawned;
}

async function until(what: string, condition: () => boolean, timeoutMs: number, context: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}\n${context()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('two hosts on one LAN (namespaces, TAP devices on bridges): the primary killed, the client in a third namespace keeps its connection', { skip: canMakeNamespaces(), timeout: 400_000 }, async (t) => {
  const tag = String(process.pid % 100_000);
  const directory = scratchDirectory('net-hosts');
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 16 * 1024 * 1024);
  const arbiter = path.join(directory, 'arbiter');
  const created: string[] = [];
  const processes: Spawned[] = [];
  const tail = (): string => processes.map((p, i) => `--- process ${i} stdout ---\n${p.out.slice(-1500)}\n--- stderr ---\n${p.err.slice(-1500)}`).join('\n');
  try {
    const ns = buildLan(tag, created);
    const append = `${defaultBootargs} ip=${lan.guest}::${lan.hostA}:255.255.255.0::eth0:off`;
    const common = ['--guest', 'linux', '--disk', image, '--arbiter', arbiter, '--append', append];
    const primary = inNamespace(ns.a, [cliPath, 'primary', '--insecure', '--listen', `${lan.hostA}:${replicationPort}`, '--wait-for-backup', '--net', 'tap,ifname=tapA', ...common], 'pipe');
    processes.push(primary);
    await until('the primary to listen', () => /waiting for a backup/.test(primary.err), 60_000, tail);
    const backup = inNamespace(ns.b, [cliPath, 'backup', '--insecure', '--connect', `${lan.hostA}:${replicationPort}`, '--net', 'tap,ifname=tapB', ...common], 'pipe');
    processes.push(backup);
    await until('filehttpd on the primary', () => /filehttpd serving/.test(primary.out), bootTimeoutMs, tail);
    const client = inNamespace(ns.c, [path.join(repoRoot, 'dist/bench/http-client-main.js'), lan.guest, '80', String(requests)]);
    processes.push(client);
    await until(`${killAfter} answers`, () => client.out.includes(`answered ${killAfter}\n`) || /error:/.test(client.out), bootTimeoutMs, tail);
    primary.child.kill('SIGKILL');
    const killedAt = performance.now();
    await until('the next answer', () => client.out.includes(`answered ${killAfter + 1}\n`) || client.child.exitCode !== null, bootTimeoutMs, tail);
    t.diagnostic(`the answer after the kill came ${(performance.now() - killedAt).toFixed(0)} ms after it`);
    const clientStatus = await client.exited;
    assert.equal(clientStatus, 0, `the client: ${client.out.split('\n').filter((line) => line.startsWith('error')).join('\n')}\n${tail()}`);
    assert.match(client.out, /done\n$/);
    assert.match(backup.err, /the primary failed/);
    backup.child.stdin!.write('poweroff\n');
    assert.equal(await backup.exited, 0, tail());
    const check = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
    assert.equal(check.status, 0, `e2fsck: ${check.stdout}${check.stderr}`);
  } finally {
    for (const spawned of processes) spawned.child.kill('SIGKILL');
    await Promise.all(processes.map((spawned) => spawned.exited));
    for (const name of created) spawnSync('ip', ['netns', 'del', name]);
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
