/**
 * The guest's service through a failover, with real processes and the real back-end: Linux on
 * `pair --net user,hostfwd=...` (passt in the pair process) runs filehttpd; a host client on ONE
 * keep-alive connection PUTs and GETs files without pause while the primary (or the backup) is
 * SIGKILLed at a seeded moment, chosen by how many requests have been answered. The client must
 * see no reset, every answer right, every answered PUT there afterwards; the guest then powers
 * off and the ext4 image must check clean.
 *
 * NET_LINUX_SEEDS (default 10) sets how many kills of the primary; one kill of the backup follows.
 * Needs linux/build.sh's outputs (the suite's set-up builds them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from './helpers.js';
import { ensureDataDisk } from '../src/host/linux-guest.js';
import { CliProcess, freePort, pairReplicaPid, scratchDirectory } from './support/replica-processes.js';
import { KeepAliveClient, type HttpResponse } from '../src/host/network/http-client.js';
import { Prng } from '../src/simulator/prng.js';

const seeds = Number(process.env['NET_LINUX_SEEDS'] ?? 10);
const kernel = path.join(repoRoot, '.cache/linux/Image');
const bootTimeoutMs = 120_000;
/** One answer may take a failover (about a second) and a TCP retransmission or two on a loaded host. */
const answerTimeoutMs = 60_000;
const requestsPerTrial = 60;

interface Trial {
  readonly stallMs: number;
  readonly requests: number;
}

async function trial(seed: number, victim: 'primary' | 'backup'): Promise<Trial> {
  const random = new Prng(seed);
  const killAfter = random.int(2, requestsPerTrial - 10);
  const directory = scratchDirectory('net-linux');
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 16 * 1024 * 1024);
  const port = await freePort();
  const pair = new CliProcess(['pair', '--guest', 'linux', '--disk', image, '--net', `user,hostfwd=tcp::${port}-:80`], { input: 'pipe', timeoutMs: 400_000 });
  const stored = new Map<string, Buffer>();
  let client: KeepAliveClient | undefined;
  let stallMs = 0;
  try {
    await pair.waitFor('stdout', /filehttpd serving \/data on port 80/, bootTimeoutMs);
    client = await KeepAliveClient.connect(port);
    let killedAt: number | undefined;
    for (let index = 0; index < requestsPerTrial; index++) {
      const started = performance.now();
      if (index % 2 === 0 || stored.size === 0) {
        const name = `file-${random.int(0, 15)}`;
        const body = Buffer.from(Array.from({ length: random.int(0, 6000) }, () => random.int(0, 255)));
        const answer: HttpResponse = await client.request('PUT', `/${name}`, body, answerTimeoutMs);
        assert.equal(answer.status, 200, `PUT /${name}: ${answer.body.toString()}`);
        assert.equal(answer.body.toString(), `stored ${body.length} bytes\n`);
        stored.set(name, body);
      } else {
        const name = random.pick([...stored.keys()]);
        const answer: HttpResponse = await client.request('GET', `/${name}`, undefined, answerTimeoutMs);
        assert.equal(answer.status, 200, `GET /${name}`);
        assert.ok(answer.body.equals(stored.get(name)!), `GET /${name} returns what was PUT last`);
      }
      if (killedAt !== undefined && stallMs === 0) stallMs = performance.now() - Math.max(killedAt, started);
      if (index === killAfter) {
        const pid = pairReplicaPid(pair.child.pid!, victim);
        assert.ok(pid !== undefined, `the ${victim} is running`);
        process.kill(pid, 'SIGKILL');
        killedAt = performance.now();
      }
    }
    // Every answered PUT is there afterwards, on the same connection.
    for (const [name, body] of stored) {
      const answer = await client.request('GET', `/${name}`, undefined, answerTimeoutMs);
      assert.equal(answer.status, 200);
      assert.ok(answer.body.equals(body), `/${name} after the kill`);
    }
    assert.equal(client.lost, undefined, 'the client never lost its connection');
    const missing = await client.request('GET', '/no-such-file', undefined, answerTimeoutMs);
    assert.equal(missing.status, 404);
    client.close();
    pair.child.stdin!.write('poweroff\n');
    const result = await pair.done;
    assert.equal(result.status, 0, pair.tail());
    if (victim === 'primary') assert.match(result.stderr, /the backup went live/);
    const check = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
    assert.equal(check.status, 0, `e2fsck: ${check.stdout}${check.stderr}`);
    return { stallMs, requests: requestsPerTrial + stored.size + 1 };
  } catch (error) {
    throw new Error(`seed ${seed} (${victim} killed after request ${killAfter}): ${error instanceof Error ? error.message : String(error)}\n${pair.tail()}`);
  } finally {
    client?.close();
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

const skip = fs.existsSync(kernel) ? false : 'the Linux guest is not built (linux/build.sh)';

test(`filehttpd under pair --net user: the primary killed at ${seeds} seeded moments, one keep-alive client never notices`, { skip, timeout: seeds * 300_000 }, async (t) => {
  const stalls: number[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const result = await trial(seed, 'primary');
    stalls.push(result.stallMs);
    t.diagnostic(`seed ${seed}: ${result.requests} requests, the one after the kill took ${result.stallMs.toFixed(0)} ms`);
  }
  stalls.sort((a, b) => a - b);
  t.diagnostic(`after the kill: median ${stalls[Math.floor(stalls.length / 2)]!.toFixed(0)} ms, worst ${stalls[stalls.length - 1]!.toFixed(0)} ms`);
});

test('filehttpd under pair --net user: the backup killed, the client never notices', { skip, timeout: 300_000 }, async (t) => {
  const result = await trial(1001, 'backup');
  t.diagnostic(`${result.requests} requests, the one after the kill took ${result.stallMs.toFixed(0)} ms`);
});
