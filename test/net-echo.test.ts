/**
 * guests/tests/net_echo.c side by side on QEMU (-netdev stream) and understudy (--net stream):
 * the same frames in, the same frames out, the same console. The test is the network: a UNIX
 * socket server speaking the stream framing (test/support/net-peer.ts).
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first (and QEMU for the side-by-side part).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestElf, haveQemu, qemuBinary, qemuCpu } from './helpers.js';
import { CliProcess, scratchDirectory } from './support/replica-processes.js';
import { FramePeer, arpRequest, guestIp, isArpReply, parseUdp, udpDatagram } from './support/net-peer.js';

/** Longest wait for one answer: the guest answers in microseconds; this allows a loaded machine. */
const answerTimeoutMs = 60_000;
const expectedConsole =
  'net_echo: slot 7 mac 52:54:00:12:34:56 link up\n' +
  'net_echo: 1 ARP requests answered, 4 datagrams echoed, 2 frames ignored\n' +
  'PASS net_echo\n';

const hex = (frame: Uint8Array): string => Buffer.from(frame).toString('hex');

/** The script: every answer the guest gave, as hex, in order. */
async function exchange(peer: FramePeer): Promise<string[]> {
  const answers: string[] = [];
  peer.send(arpRequest(guestIp));
  const arp = await peer.next(isArpReply, answerTimeoutMs);
  assert.ok(arp !== undefined, 'an ARP reply');
  answers.push(hex(arp));
  peer.send(arpRequest(Uint8Array.of(10, 0, 2, 99))); // not the guest's: ignored
  peer.send(udpDatagram({ destinationPort: 9, sourcePort: 4000, payload: Uint8Array.of(1, 2, 3) })); // discard port: ignored
  for (const [index, size] of [1, 100, 1472, 4].entries()) {
    const payload = size === 4 ? new TextEncoder().encode('quit') : Uint8Array.from({ length: size }, (_, i) => (i * 31 + index) & 0xff);
    peer.send(udpDatagram({ destinationPort: 7, sourcePort: 5000 + index, payload }));
    const echo = await peer.next((frame) => parseUdp(frame)?.destinationPort === 5000 + index, answerTimeoutMs);
    assert.ok(echo !== undefined, `the echo of datagram ${index}`);
    const datagram = parseUdp(echo)!;
    assert.deepEqual(datagram.payload, payload);
    assert.equal(datagram.sourceIp, '10.0.2.15');
    assert.equal(datagram.destinationIp, '10.0.2.2');
    assert.equal(datagram.sourcePort, 7);
    answers.push(hex(echo));
  }
  return answers;
}

test('net_echo on understudy: ARP answered, UDP echoed, the rest ignored, through --net stream', { timeout: 180_000 }, async () => {
  const directory = scratchDirectory('net-echo');
  const socketPath = path.join(directory, 'net.sock');
  const peer = await FramePeer.listen(socketPath);
  const run = new CliProcess(['run', '--kernel', guestElf('net_echo'), '--net', `stream,path=${socketPath}`], { timeoutMs: 170_000 });
  try {
    await run.waitFor('stdout', /link up\n/, answerTimeoutMs);
    const answers = await exchange(peer);
    const result = await run.done;
    assert.equal(result.status, 0, run.tail());
    assert.equal(result.stdout, expectedConsole);
    fs.writeFileSync(path.join(directory, 'answers.json'), JSON.stringify(answers));
    // The same on QEMU, frame for frame.
    if (!haveQemu()) return;
    const qemuPeer = await FramePeer.listen(path.join(directory, 'qemu.sock'));
    const qemu = spawn(qemuBinary, [
      '-M', 'virt', '-bios', 'none', '-nographic', '-icount', 'shift=0,sleep=off', '-cpu', qemuCpu,
      '-global', 'virtio-mmio.force-legacy=false',
      '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${path.join(directory, 'qemu.sock')}`,
      '-device', 'virtio-net-device,netdev=n0,mac=52:54:00:12:34:56',
      '-kernel', guestElf('net_echo'),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let qemuOut = '';
    qemu.stdout.setEncoding('latin1').on('data', (chunk: string) => (qemuOut += chunk));
    const exited = new Promise<number | null>((resolve) => qemu.on('exit', (code) => resolve(code)));
    try {
      await qemuPeer.connection();
      const deadline = performance.now() + answerTimeoutMs;
      while (!qemuOut.includes('link up\n') && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const qemuAnswers = await exchange(qemuPeer);
      assert.deepEqual(qemuAnswers, answers, 'QEMU answered with the same frames');
      await exited;
      assert.equal(qemuOut.replace(/\r/g, ''), expectedConsole);
    } finally {
      qemu.kill('SIGKILL');
      qemuPeer.close();
    }
  } finally {
    run.killGroup();
    peer.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
