/**
 * Partitions between real processes on two virtual hosts (network namespaces joined by a veth
 * pair): the link is cut both ways, or one way, at a moment of the guest's progress (a seeded
 * line of its console). Whatever the cut, exactly one replica goes on (the arbiter's winner of
 * generation 2, on a directory both hosts share); the other stops, having written nothing the
 * world can see after the winner went live: the disk image is exactly a failure-free run's and
 * the console, the primary's then the winner's, has every line in order with repeats only from
 * the epochs in flight.
 *
 * UNDERSTUDY_PARTITION_SEED=N picks other moments. Needs root, iproute2 and nftables (the
 * set-up installs them); skipped with the reason otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestElf } from './helpers.js';
import { Prng } from '../src/simulator/prng.js';
import { ExitStatus } from '../src/host/exit-status.js';
import { checkConsoleWithRepeats, createBlankDiskImage, expectedConsole, expectedDiskImage, smallShape } from './support/pair-workload.js';
import { assertImage, CliProcess, describeResult, scratchDirectory } from './support/replica-processes.js';
import { hostAddress, TwoHosts, twoHostsUnavailable, type Cut } from './support/netns.js';

const unavailable = twoHostsUnavailable();
const seed = Number(process.env['UNDERSTUDY_PARTITION_SEED'] ?? 1996);
const processTimeoutMs = 60_000;
const port = 7000;
/** Short enough for many trials, long enough that a loaded host is not taken for a cut one. */
const failureTimeoutMs = 1500;
const numberedLines = expectedConsole(smallShape).match(/^line \d{4} /gm)?.length ?? 0;

const prng = new Prng(seed);
const trials: { cut: Cut; atLine: number }[] = [
  ...Array.from({ length: 10 }, () => ({ cut: 'both ways' as const, atLine: prng.int(2, numberedLines - 2) })),
  ...Array.from({ length: 5 }, () => ({ cut: 'a to b' as const, atLine: prng.int(2, numberedLines - 2) })),
  ...Array.from({ length: 5 }, () => ({ cut: 'b to a' as const, atLine: prng.int(2, numberedLines - 2) })),
];

for (const [index, { cut, atLine }] of trials.entries()) {
  test(`partition ${index + 1}: the link is cut ${cut === 'both ways' ? 'both ways' : `one way (${cut === 'a to b' ? 'the primary\'s traffic' : 'the backup\'s traffic'} is lost)`} at line ${atLine} of ${numberedLines}: one replica goes on, exactly`, { timeout: 120_000, skip: unavailable ?? false }, async (t) => {
    const hosts = new TwoHosts();
    const directory = scratchDirectory('partition');
    const image = path.join(directory, 'disk.img');
    createBlankDiskImage(image, smallShape);
    const arbiter = path.join(directory, 'arbiter');
    const common = ['--insecure', '--failure-timeout', String(failureTimeoutMs), '--verbose', '--kernel', guestElf('pair_small_gated'), '--disk', image, '--arbiter', arbiter];
    const primary = new CliProcess(['primary', '--listen', `${hostAddress.a}:${port}`, '--wait-for-backup', ...common], { input: 'pipe', timeoutMs: processTimeoutMs, prefix: hosts.prefix('a') });
    let backup: CliProcess | undefined;
    try {
      await primary.waitFor('stderr', /listening on /, 30_000);
      backup = new CliProcess(['backup', '--connect', `${hostAddress.a}:${port}`, ...common], { input: 'pipe', timeoutMs: processTimeoutMs, prefix: hosts.prefix('b') });
      await primary.waitFor('stdout', new RegExp(`^line ${String(atLine).padStart(4, '0')} `, 'm'), 30_000);
      hosts.cut(cut);
      const follower = backup;
      // The first to say it won (the loser may stop before the winner says so).
      const winner = await Promise.any([
        primary.waitFor('stderr', /running alone \(generation 2\)/, 60_000).then(() => primary),
        follower.waitFor('stderr', /promoted: live from epoch \d+ \(generation 2\)/, 60_000).then(() => follower),
      ]);
      t.diagnostic(`the ${winner === primary ? 'primary' : 'backup'} won generation 2`);
      winner.child.stdin!.end('g');
      const [primaryResult, backupResult] = await Promise.all([primary.done, follower.done]);
      const context = `\nreplay: UNDERSTUDY_PARTITION_SEED=${seed}, trial ${index + 1}\n--- primary\n${describeResult(primaryResult)}\n--- backup\n${describeResult(backupResult)}`;
      const [won, lost] = winner === primary ? [primaryResult, backupResult] : [backupResult, primaryResult];
      assert.equal(won.status, 0, `the winner finishes the guest${context}`);
      assert.equal(lost.status, ExitStatus.notLive, `the other stops: the arbiter said no${context}`);
      // One winner per generation: the arbiter holds generations 1 and 2, nothing more.
      assert.deepEqual(fs.readdirSync(arbiter).map((file) => file.replace(/^.*\./, '')).sort(), ['live-1', 'live-2'], context);
      assert.doesNotMatch(primaryResult.stderr + backupResult.stderr, /divergence|^\s+at /m, context);
      if (winner === primary) {
        // The primary went on alone: the backup never printed, the primary printed it all once.
        assert.equal(backupResult.stdout, '', context);
        assert.ok(primaryResult.stdout === expectedConsole(smallShape), `console${context}`);
      } else {
        const check = checkConsoleWithRepeats(primaryResult.stdout + backupResult.stdout, { shape: smallShape });
        assert.ok(check.ok, `console: ${check.reason}${context}`);
      }
      assertImage(image, expectedDiskImage(smallShape), context);
    } finally {
      primary.killGroup();
      backup?.killGroup();
      await Promise.all([primary.done, backup?.done]);
      hosts.destroy();
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });
}
