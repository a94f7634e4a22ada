/**
 * The etcd arbiter against a real etcd on loopback: generation g is won exactly once, also by
 * processes that race for it; a pair fails over through it; an etcd that cannot be reached
 * lets nobody go live, and says so. The file arbiter gives the same answers; reading who holds
 * a generation takes nothing, on both.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first, and Debian's etcd-server.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { guestElf, repoRoot } from './helpers.js';
import { EtcdArbiter, parseEtcdAddress } from '../src/host/replica/etcd-arbiter.js';
import { FileArbiter } from '../src/host/replica/arbiter.js';
import { checkConsoleWithRepeats, createBlankDiskImage, expectedDiskImage, smallShape } from './support/pair-workload.js';
import { assertImage, CliProcess, describeResult, freePort, pairReplicaPid, runCli, scratchDirectory } from './support/replica-processes.js';
import { EtcdServer } from './support/etcd.js';

const testTimeoutMs = 90_000;
let etcd: EtcdServer;

before(async () => {
  etcd = await EtcdServer.start();
});

after(async () => {
  await etcd?.stop();
});

test('etcd arbiter: each generation is won once, in order', () => {
  const arbiter = new EtcdArbiter(parseEtcdAddress(etcd.arbiterAddress('once')));
  try {
    assert.deepEqual(arbiter.tryGoLive('c1', 1, 'primary', []), { won: true });
    assert.deepEqual(arbiter.tryGoLive('c1', 1, 'primary', []), { won: false, holder: { replica: 'primary', members: [] } }, 'generation 1 again');
    assert.deepEqual(arbiter.tryGoLive('c1', 3, 'backup', []), { won: false, holder: undefined }, 'a generation out of turn');
    assert.deepEqual(arbiter.tryGoLive('c1', 2, 'primary', ['backup-a', 'backup-b']), { won: true }, 'the primary drops a backup, keeping two');
    assert.deepEqual(arbiter.tryGoLive('c1', 2, 'backup-a', []), { won: false, holder: { replica: 'primary', members: ['backup-a', 'backup-b'] } }, 'a backup reads the record');
    assert.deepEqual(arbiter.tryGoLive('c1', 3, 'backup-a', []), { won: true });
    assert.deepEqual(arbiter.tryGoLive('c2', 1, 'primary', []), { won: true }, 'another cluster has its own generations');
    // Reading takes nothing: a generation no one holds stays free.
    assert.deepEqual(arbiter.holder('c1', 2), { replica: 'primary', members: ['backup-a', 'backup-b'] });
    assert.equal(arbiter.holder('c1', 4), undefined);
    assert.equal(arbiter.holder('c3', 1), undefined);
    assert.deepEqual(arbiter.tryGoLive('c1', 4, 'backup-b', []), { won: true }, 'generation 4, read before, is still free');
  } finally {
    arbiter.close();
  }
});

test('file arbiter: the same answers, and a read takes nothing', () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-arbiter-'));
  try {
    const arbiter = new FileArbiter(directory);
    assert.deepEqual(arbiter.tryGoLive('c1', 1, 'primary', []), { won: true });
    assert.deepEqual(arbiter.tryGoLive('c1', 2, 'primary', ['backup-a']), { won: true });
    assert.deepEqual(arbiter.tryGoLive('c1', 2, 'backup-b', []), { won: false, holder: { replica: 'primary', members: ['backup-a'] } });
    assert.deepEqual(arbiter.holder('c1', 2), { replica: 'primary', members: ['backup-a'] });
    assert.equal(arbiter.holder('c1', 3), undefined);
    assert.deepEqual(arbiter.tryGoLive('c1', 3, 'backup-a', []), { won: true }, 'generation 3, read before, is still free');
    fs.writeFileSync(path.join(directory, 'c1.live-9'), 'not a record');
    assert.equal(arbiter.holder('c1', 9), undefined, 'a record that does not parse');
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('etcd arbiter: processes racing for one generation: exactly one wins', { timeout: testTimeoutMs }, async () => {
  const address = etcd.arbiterAddress('race');
  const setup = new EtcdArbiter(parseEtcdAddress(address));
  assert.equal(setup.tryGoLive('raced', 1, 'primary', []).won, true);
  setup.close();
  const module = path.join(repoRoot, 'dist/src/host/replica/etcd-arbiter.js');
  const racers = 6;
  const results = await Promise.all(
    Array.from({ length: racers }, (_, index) => {
      const script = `import { EtcdArbiter, parseEtcdAddress } from ${JSON.stringify(module)};
        const arbiter = new EtcdArbiter(parseEtcdAddress(${JSON.stringify(address)}));
        process.stdout.write(String(arbiter.tryGoLive('raced', 2, 'racer-${index}', []).won));
        arbiter.close();`;
      return new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        child.on('error', reject);
        child.on('close', () => resolve(out));
      });
    }),
  );
  assert.equal(results.filter((result) => result === 'true').length, 1, results.join(' '));
  assert.equal(results.filter((result) => result === 'false').length, racers - 1, results.join(' '));
  const owner = await etcd.get('/race/clusters/raced/live');
  assert.match(owner ?? '', /^generation 2: racer-\d, pid \d+ on /);
});

test('a pair with an etcd arbiter: the primary is killed, the backup wins generation 2 and finishes exactly', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('etcd-pair');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, smallShape);
  const pair = new CliProcess(['pair', '--kernel', guestElf('pair_small_gated'), '--disk', image, '--arbiter', etcd.arbiterAddress('pair')], {
    input: 'pipe',
    timeoutMs: 60_000,
  });
  try {
    await pair.waitFor('stdout', /^line 0020 /m, 60_000);
    const primary = pairReplicaPid(pair.child.pid!, 'primary');
    assert.ok(primary !== undefined, pair.tail());
    process.kill(primary, 'SIGKILL');
    await pair.waitFor('stderr', /the backup went live/, 60_000);
    pair.child.stdin!.end('g');
    const result = await pair.done;
    assert.equal(result.status, 0, describeResult(result));
    assert.ok(checkConsoleWithRepeats(result.stdout, { shape: smallShape }).ok, describeResult(result));
    assertImage(image, expectedDiskImage(smallShape));
    const clusters = (await etcd.keys('/pair/clusters/')).filter((key) => key.endsWith('/generation'));
    assert.equal(clusters.length, 1, clusters.join(' '));
    assert.equal(await etcd.get(clusters[0]!), '2', `the backup took generation 2\n${describeResult(result)}`);
  } finally {
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('an etcd that cannot be reached lets no primary start, with one clear line', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('etcd-down');
  try {
    const image = path.join(directory, 'disk.img');
    createBlankDiskImage(image, smallShape);
    const nobody = await freePort();
    const result = await runCli(['primary', '--listen', '127.0.0.1:0', '--insecure', '--kernel', guestElf('pair_small'), '--disk', image, '--arbiter', `etcd://127.0.0.1:${nobody}/x`], 60_000);
    assert.equal(result.status, 2, describeResult(result));
    assert.match(result.stderr, /the etcd arbiter did not answer \(http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\)/, describeResult(result));
    assert.match(result.stderr, /^understudy: the arbiter did not let this primary start .*: is it reachable\?$/m, describeResult(result));
    assert.doesNotMatch(result.stderr, /^\s+at /m);
    assertImage(image, new Uint8Array(smallShape.diskSectors * 512), ': the disk is untouched');
    const bad = await runCli(['pair', '--kernel', guestElf('pair_small'), '--arbiter', 'etcd://nowhere/x'], 30_000);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^understudy: --arbiter: "nowhere" in etcd:\/\/nowhere\/x is not HOST:PORT$/m);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
