/**
 * Network fault tolerance with real processes: `pair --net stream,...` runs net_echo (a UDP
 * echo host, guests/tests/net_echo.c) while this test, the network, sends it numbered
 * datagrams one after another; SIGKILL of the primary (or the backup) at seeded moments, chosen
 * by how many answers have come. A client that retransmits (as any UDP client does) must get
 * every answer, each one right; duplicates of answers are allowed (frames of unacknowledged
 * epochs may repeat), and the pair must end as the guest ends.
 *
 * NET_PAIR_SEEDS (default 10) sets how many kills of the primary; 3 kills of the backup follow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestElf } from './helpers.js';
import { CliProcess, pairReplicaPid, scratchDirectory } from './support/replica-processes.js';
import { FramePeer, parseUdp, udpDatagram } from './support/net-peer.js';
import { Prng } from '../src/simulator/prng.js';

const seeds = Number(process.env['NET_PAIR_SEEDS'] ?? 10);
const datagrams = 40;
/** The client's retransmission timer: well under a failover, so the stall shows in retries. */
const retransmitMs = 100;
/** The longest a datagram may go unanswered before the test fails: a failover takes about a second. */
const answerPatienceMs = 60_000;

interface Trial {
  readonly retransmissions: number;
  /** From the kill to the first answer after it. */
  readonly stallMs: number;
  readonly stderr: string;
}

async function trial(seed: number, victim: 'primary' | 'backup'): Promise<Trial> {
  const random = new Prng(seed);
  const killAfter = random.int(3, datagrams - 5);
  const directory = scratchDirectory('net-pair');
  const socketPath = path.join(directory, 'net.sock');
  const peer = await FramePeer.listen(socketPath);
  const pair = new CliProcess(['pair', '--kernel', guestElf('net_echo'), '--net', `stream,path=${socketPath}`], { timeoutMs: 170_000 });
  let retransmissions = 0;
  let killedAt: number | undefined;
  let stallMs = 0;
  try {
    await pair.waitFor('stdout', /link up\n/, answerPatienceMs);
    for (let index = 0; index <= datagrams; index++) {
      const last = index === datagrams;
      const payload = last ? new TextEncoder().encode('quit') : new TextEncoder().encode(`datagram ${index} of seed ${seed}: ${'x'.repeat(random.int(0, 1000))}`);
      const sourcePort = 10_000 + index;
      const started = performance.now();
      let answer: Uint8Array | undefined;
      while (answer === undefined) {
        assert.ok(performance.now() - started < answerPatienceMs, `datagram ${index} unanswered for ${answerPatienceMs} ms\n${pair.tail()}`);
        peer.send(udpDatagram({ destinationPort: 7, sourcePort, payload }));
        answer = await peer.next((frame) => parseUdp(frame)?.destinationPort === sourcePort, retransmitMs);
        if (answer === undefined) retransmissions++;
      }
      assert.deepEqual(parseUdp(answer)!.payload, payload, `the answer to datagram ${index}`);
      if (killedAt !== undefined && stallMs === 0) stallMs = performance.now() - killedAt;
      if (index === killAfter) {
        const pid = pairReplicaPid(pair.child.pid!, victim);
        assert.ok(pid !== undefined, `the ${victim} is running`);
        process.kill(pid, 'SIGKILL');
        killedAt = performance.now();
      }
      // Answers to earlier datagrams that came twice are no news.
      peer.take();
    }
    const result = await pair.done;
    assert.equal(result.status, 0, pair.tail());
    assert.match(result.stdout, /PASS net_echo/);
    if (victim === 'primary') assert.match(result.stderr, /the backup went live/);
    return { retransmissions, stallMs, stderr: result.stderr };
  } finally {
    pair.killGroup();
    peer.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

test(`pair --net: the primary killed at ${seeds} seeded moments, every datagram answered`, { timeout: seeds * 120_000 }, async (t) => {
  const stalls: number[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const result = await trial(seed, 'primary');
    stalls.push(result.stallMs);
    t.diagnostic(`seed ${seed}: ${result.retransmissions} retransmissions, ${result.stallMs.toFixed(0)} ms from the kill to the next answer`);
  }
  stalls.sort((a, b) => a - b);
  t.diagnostic(`stall after the kill: median ${stalls[Math.floor(stalls.length / 2)]!.toFixed(0)} ms, worst ${stalls[stalls.length - 1]!.toFixed(0)} ms`);
});

test('pair --net: the backup killed at 3 seeded moments, the primary answers on alone', { timeout: 3 * 120_000 }, async (t) => {
  for (let seed = 101; seed <= 103; seed++) {
    const result = await trial(seed, 'backup');
    t.diagnostic(`seed ${seed}: ${result.retransmissions} retransmissions, ${result.stallMs.toFixed(0)} ms from the kill to the next answer`);
  }
});
