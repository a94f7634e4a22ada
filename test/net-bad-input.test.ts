/**
 * Bad input on the network, with real processes: a back-end that sends frames over the MTU,
 * runts, a length no frame has, or dies in the middle of a frame; passt killed under a running
 * Linux guest; a guest that floods frames at a reader that has stopped reading. Each is said in
 * one clear message (once), nothing crashes, and memory stays bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestElf, repoRoot } from './helpers.js';
import { CliProcess, freePort, scratchDirectory } from './support/replica-processes.js';
import { FramePeer, parseUdp, udpDatagram } from './support/net-peer.js';
import { KeepAliveClient } from '../src/host/network/http-client.js';
import { ensureDataDisk } from '../src/host/linux-guest.js';

const answerTimeoutMs = 60_000;

/** Sends datagram `text` to port 7 and waits for its echo (retransmitting, as a client would). */
async function echo(peer: FramePeer, text: string, sourcePort: number): Promise<void> {
  const payload = new TextEncoder().encode(text);
  const deadline = performance.now() + answerTimeoutMs;
  for (;;) {
    assert.ok(performance.now() < deadline, `no echo of "${text}"`);
    peer.send(udpDatagram({ destinationPort: 7, sourcePort, payload }));
    const answer = await peer.next((frame) => parseUdp(frame)?.destinationPort === sourcePort, 500);
    if (answer !== undefined) return;
  }
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

test('a back-end that sends oversized frames, runts, then dies mid-frame: one message each, the guest runs on', { timeout: 120_000 }, async () => {
  const directory = scratchDirectory('net-bad');
  const socketPath = path.join(directory, 'net.sock');
  const peer = await FramePeer.listen(socketPath);
  const run = new CliProcess(['run', '--kernel', guestElf('net_echo'), '--net', `stream,path=${socketPath}`], { timeoutMs: 110_000 });
  try {
    await run.waitFor('stdout', /link up\n/, answerTimeoutMs);
    await echo(peer, 'before', 6000);
    for (let i = 0; i < 5; i++) peer.send(new Uint8Array(2000 + i));
    for (let i = 0; i < 5; i++) peer.send(new Uint8Array(3 + i));
    await echo(peer, 'after the bad frames', 6001);
    await run.waitFor('stderr', /frames outside 14\.\.1518 bytes are dropped/, answerTimeoutMs);
    assert.equal(count(run.stderr, /are dropped/), 1, 'said once');
    // A frame begun and never finished, then the connection closes.
    peer.sendRaw(Uint8Array.of(0, 0, 0, 100, 1, 2, 3));
    peer.dropConnection();
    await run.waitFor('stderr', /went away in the middle of a frame \(7 bytes of it\).*the guest's link is down/, answerTimeoutMs);
    assert.equal(run.exited, false, 'the machine runs on without its network');
    assert.equal(count(run.stderr, /went away/), 1);
  } finally {
    run.killGroup();
    peer.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a back-end that sends a length no frame has is disconnected with one message', { timeout: 120_000 }, async () => {
  const directory = scratchDirectory('net-bad');
  const socketPath = path.join(directory, 'net.sock');
  const peer = await FramePeer.listen(socketPath);
  const run = new CliProcess(['run', '--kernel', guestElf('net_echo'), '--net', `stream,path=${socketPath}`], { timeoutMs: 110_000 });
  try {
    await run.waitFor('stdout', /link up\n/, answerTimeoutMs);
    peer.sendRaw(Uint8Array.of(0x7f, 0xff, 0xff, 0xff));
    await run.waitFor('stderr', /sent a frame of 2147483647 bytes \(at most 65536\), which is no frame; the guest's link is down/, answerTimeoutMs);
    assert.equal(run.exited, false);
  } finally {
    run.killGroup();
    peer.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a guest that floods frames at a reader that stopped reading: the guest waits, nothing is lost, memory stays bounded', { timeout: 180_000 }, async () => {
  const directory = scratchDirectory('net-flood');
  const socketPath = path.join(directory, 'net.sock');
  const peer = await FramePeer.listen(socketPath);
  const run = new CliProcess(['run', '--kernel', guestElf('net_echo'), '--net', `stream,path=${socketPath}`], { timeoutMs: 170_000 });
  const frames = 30_000; // 42 MB of frames
  try {
    await run.waitFor('stdout', /link up\n/, answerTimeoutMs);
    await echo(peer, 'hello', 6000);
    peer.pauseReading();
    peer.send(udpDatagram({ destinationPort: 7, sourcePort: 6001, payload: new TextEncoder().encode(`flood ${frames}`) }));
    // The guest sends until the host's buffers fill, then waits: it stops retiring instructions.
    let previous = -1;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const retired = instructionsOf(run.child.pid!);
      if (retired === previous) break;
      previous = retired;
    }
    const peakBytes = peakMemoryBytes(run.child.pid!);
    assert.ok(peakBytes < 600 * 1024 * 1024, `peak memory ${peakBytes} bytes`);
    peer.resumeReading();
    // Every frame arrives, in order.
    let next = 0;
    while (next < frames) {
      const frame = await peer.next((candidate) => parseUdp(candidate)?.destinationPort === 6001, answerTimeoutMs);
      assert.ok(frame !== undefined, `flood frame ${next} never came`);
      const text = new TextDecoder().decode(parseUdp(frame)!.payload.subarray(0, 16));
      if (text.startsWith('flood ') && !text.startsWith(`flood ${frames}`)) {
        assert.ok(text.startsWith(`flood ${next}\0`) || text.startsWith(`flood ${next}f`), `frame ${next}: got "${text}"`);
        next++;
      }
    }
  } finally {
    run.killGroup();
    peer.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

/** The process's CPU time in clock ticks: it stops growing when the guest waits. */
function instructionsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function peakMemoryBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

test('passt killed under a running Linux guest: one message, started again, the link comes back, the service answers', { skip: fs.existsSync(path.join(repoRoot, '.cache/linux/Image')) ? false : 'the Linux guest is not built', timeout: 240_000 }, async () => {
  const directory = scratchDirectory('net-passt');
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 16 * 1024 * 1024);
  const port = await freePort();
  const run = new CliProcess(['run', '--guest', 'linux', '--disk', image, '--net', `user,hostfwd=tcp::${port}-:80`], { input: 'pipe', timeoutMs: 230_000 });
  try {
    await run.waitFor('stdout', /filehttpd serving/, 120_000);
    const first = await KeepAliveClient.connect(port);
    assert.equal((await first.request('PUT', '/kept', Buffer.from('across passt restarts'), answerTimeoutMs)).status, 200);
    first.close();
    const passt = childNamed(run.child.pid!, 'passt');
    assert.ok(passt !== undefined, 'passt runs as a child of understudy');
    process.kill(passt, 'SIGKILL');
    await run.waitFor('stderr', /the network back-end \(passt\) went away.*the guest's link is down/, answerTimeoutMs);
    await run.waitFor('stderr', /the network back-end \(passt\) is back; the guest's link is up/, answerTimeoutMs);
    // The forward listens again; a new connection reaches the same service and file.
    const deadline = performance.now() + answerTimeoutMs;
    let body: Buffer | undefined;
    while (body === undefined) {
      assert.ok(performance.now() < deadline, 'the service answers again');
      try {
        const client = await KeepAliveClient.connect(port);
        const answer = await client.request('GET', '/kept', undefined, 5000);
        client.close();
        body = answer.body;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    assert.equal(body.toString(), 'across passt restarts');
    run.child.stdin!.write('poweroff\n');
    const result = await run.done;
    assert.equal(result.status, 0, run.tail());
    assert.equal(spawnSync('e2fsck', ['-fn', image]).status, 0);
  } finally {
    run.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

/** A child of `parentPid` whose command is `name`. */
function childNamed(parentPid: number, name: string): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== parentPid) continue;
      if (path.basename(fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[0]!) === name) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}
