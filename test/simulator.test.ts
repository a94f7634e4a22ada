/**
 * The seeded simulator: the production protocol classes (PrimaryReplica, BackupReplica) and
 * machines, with a simulated link, shared disk and arbiter, crashed at every named step of
 * the protocol and at random moments, partitioned, reset. Invariants are checked as each run
 * goes (see src/simulator/simulation.ts). A failing seed prints how to replay it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { readKernel, readKernelBytes } from '../src/host/guest-image.js';
import { defaultReplicationOptions, type ReplicationOptions } from '../src/replication/replica.js';
import { describeFailure, prepareCampaign, runSeed, runSeedsInParallel, seedOptions, simulatorRamBytes, simulatorWorkload } from '../src/simulator/campaign.js';
import { Machine } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import type { TranslationCache } from '../src/machine/cpu/translation-cache.js';
import { type FaultPlan } from '../src/simulator/simulation.js';
import { backupCrashPoints, primaryCrashPoints } from '../src/replication/replica.js';
import { repoRoot } from './helpers.js';

/** Seeds in the campaign: thousands by default; SIM_SEEDS=N for more or fewer. */
const campaignSeeds = Number(process.env['SIM_SEEDS'] ?? 2000);
const kernelPath = simulatorWorkload(repoRoot);
const campaign = prepareCampaign(readKernel(kernelPath));
const quiet: Omit<FaultPlan, 'crash'> = { linkLatencyMs: 0.2, linkJitterMs: 0.1, diskLatencyMs: 0.1 };

test('the simulator workload runs alone and passes (the reference)', () => {
  assert.match(campaign.reference.console, /sim_workload: PASS/);
  assert.ok(campaign.reference.disk.some((byte) => byte !== 0), 'it wrote to its disk');
});

test('a seed replays exactly: same faults, same trace, same output', () => {
  for (const seed of [7, 1234]) {
    const first = runSeed(campaign, seed);
    const again = runSeed(campaign, seed);
    assert.deepEqual(again.plan, first.plan);
    assert.deepEqual(again.trace, first.trace);
    assert.equal(again.console, first.console);
    assert.deepEqual(again.outcome, first.outcome);
  }
});

test('a primary with the translation tier (either back end) and backups without stay identical: state digests at every epoch length of instructions, through crashes and partitions', () => {
  // The workload does get translated: its machine compiles blocks with the tier.
  const alone = new Machine({ ramBytes: simulatorRamBytes, disks: [{ capacityBytes: campaign.disk.length, readOnly: false, serial: 'understudy-disk0' }] }, new VirtualClock(), { cpu: 'jit' });
  alone.load(campaign.kernel);
  for (let slice = 0; slice < 200 && alone.power === undefined; slice++) alone.run(100_000);
  assert.ok((alone.hart.tier as TranslationCache).compiledBlocks > 0, 'the simulator workload has hot blocks');
  const failures: string[] = [];
  for (let seed = 20_000; seed < 20_024; seed++) {
    const options = { ...seedOptions(seed), digestEveryEpochs: 1 };
    // The tier's two back ends in turn (JavaScript and WebAssembly blocks).
    const result = runSeed(campaign, seed, { options, primaryCpu: seed % 2 === 0 ? 'jit' : 'wasm' });
    if (result.failures.length > 0) failures.push(describeFailure(result));
  }
  assert.deepEqual(failures, []);
});

const variants: { name: string; options: ReplicationOptions }[] = [
  { name: 'relaxed, re-issue', options: { ...defaultReplicationOptions, failureTimeoutMs: 500, epochInstructions: 20_000 } },
  { name: 'original, uncertain', options: { ...defaultReplicationOptions, failureTimeoutMs: 500, epochInstructions: 20_000, protocol: 'original', pendingIo: 'uncertain' } },
];

for (const variant of variants) {
  test(`a crash at every named step of the protocol (${variant.name})`, () => {
    const failures: string[] = [];
    let seed = 10_000;
    for (const [replica, points] of [['primary', primaryCrashPoints], ['backup', backupCrashPoints]] as const) {
      for (const point of points) {
        for (const occurrence of [1, 3, 12, 30]) {
          const result = runSeed(campaign, seed++, { options: variant.options, plan: { ...quiet, crash: { replica, at: { point, occurrence } } } });
          if (result.failures.length > 0) failures.push(describeFailure(result));
        }
      }
    }
    assert.deepEqual(failures, []);
  });

  test(`partitions and connection resets at many moments (${variant.name})`, () => {
    const failures: string[] = [];
    let oneSideLost = 0;
    for (let i = 0; i < 24; i++) {
      const at = 2 + i * 4;
      for (const plan of [{ ...quiet, partitionAtMs: at }, { ...quiet, resetAtMs: at }]) {
        const result = runSeed(campaign, 20_000 + i, { options: variant.options, plan });
        if (result.failures.length > 0) failures.push(describeFailure(result));
        if (Object.values(result.outcome).some((outcome) => /arbiter/.test(outcome ?? ''))) oneSideLost++;
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(oneSideLost > 10, `in most cut-offs one side loses the arbiter and stops (${oneSideLost})`);
  });
}

test('a backup joins the running guest at many moments, by a live copy of several rounds; either side crashes during the copy or just after it', (t) => {
  const options: ReplicationOptions = { ...defaultReplicationOptions, failureTimeoutMs: 500, epochInstructions: 20_000, liveCopyStepBytes: 4096, liveCopyFinalPages: 0 };
  const failures: string[] = [];
  const seen = { copies: 0, severalRounds: 0, abandoned: 0, lostBeforeJoin: 0, failoverAfterCopy: 0 };
  let seed = 30_000;
  for (const joinAtMs of [1, 13, 28, 35, 60]) {
    for (const replica of ['primary', 'backup'] as const) {
      for (const after of [0.01, 0.3, 1, 3, 8]) {
        const result = runSeed(campaign, seed++, { options, plan: { ...quiet, joinAtMs, crash: { replica, at: { timeMs: joinAtMs + after } } } });
        if (result.failures.length > 0) failures.push(describeFailure(result));
        const trace = result.trace.join('\n');
        if (/a backup is joining: copying/.test(trace)) seen.copies++;
        if (/live copy: \d+ pages, \d+ bytes in [2-8] round/.test(trace)) seen.severalRounds++;
        if (/did not finish joining/.test(trace)) seen.abandoned++;
        if (/no replica holds the guest any more/.test(trace)) seen.lostBeforeJoin++;
        if (/live copy: /.test(trace) && /backup holds generation 2/.test(trace)) seen.failoverAfterCopy++;
      }
    }
  }
  assert.deepEqual(failures, []);
  // The plans must land where they aim: copies cut short from both sides, and failovers after a copy.
  for (const [what, count] of Object.entries(seen)) assert.ok(count > 0, `${what}: ${JSON.stringify(seen)}`);
  t.diagnostic(JSON.stringify(seen));
});

for (const writeBack of [false, true]) {
  const how = writeBack ? 'a write-back disk answers writes at once' : 'writes complete to the guest at the boundary, before the acknowledgement';
  test(`${how}; a primary crashing with such writes held, the backup writes them again, in order`, () => {
    // A slow link keeps writes held for a while after the guest has had their completion.
    const options: ReplicationOptions = { ...defaultReplicationOptions, failureTimeoutMs: 500, epochInstructions: 20_000 };
    const failures: string[] = [];
    let rewritten = 0;
    for (let i = 0; i < 16; i++) {
      const result = runSeed(campaign, 50_000 + i, { options, writeBack, plan: { ...quiet, linkLatencyMs: 2, crashes: [{ replica: 'live', timeMs: 5 + i * 4.5 }] } });
      if (result.failures.length > 0) failures.push(describeFailure(result));
      if (/write\(s\) completed early written again/.test(result.trace.join('\n'))) rewritten++;
    }
    assert.deepEqual(failures, []);
    assert.ok(rewritten >= 2, `some failovers found writes the guest had been told were done, not yet released: ${rewritten}`);
  });
}

test('t backups: the primary and t-1 backups crash at once, at many moments; the one left takes over, new backups join; the live replica crashes again and again', () => {
  const options: ReplicationOptions = { ...defaultReplicationOptions, failureTimeoutMs: 500, epochInstructions: 20_000, liveCopyStepBytes: 8192, liveCopyFinalPages: 2 };
  const failures: string[] = [];
  const seen = { runs: 0, promotions: 0, fenced: 0, lost: 0 };
  let seed = 40_000;
  const note = (result: ReturnType<typeof runSeed>): void => {
    seen.runs++;
    seen.promotions += result.failovers;
    if (result.guestLost) seen.lost++;
    if (result.failures.length > 0) failures.push(describeFailure(result));
    if (/holds generation \d+ \(backups /.test(result.trace.join('\n'))) seen.fenced++;
  };
  for (const backups of [2, 3]) {
    for (const at of [14, 31, 48, 65]) {
      const victims = ['live', 'backup', 'backup2'].slice(0, backups);
      note(runSeed(campaign, seed++, { options, plan: { ...quiet, backups, rejoinAfterMs: 2, crashes: victims.map((replica) => ({ replica, timeMs: at })) } }));
    }
  }
  // The live replica, three times, each after the last failover; a backup with it once.
  note(runSeed(campaign, seed++, {
    options,
    plan: { ...quiet, backups: 2, rejoinAfterMs: 2, crashes: [{ replica: 'live', timeMs: 30 }, { replica: 'live', timeMs: 265 }, { replica: 'backup2', timeMs: 265 }, { replica: 'live', timeMs: 505 }] },
  }));
  // A backup cut off alone: it goes live (then the primary halts, the other backup is fenced
  // by the winner's generation) or the primary drops it through the arbiter, naming the other
  // (then the cut-off one is fenced); and the primary cut off alone.
  for (const atMs of [14, 40, 55]) {
    note(runSeed(campaign, seed++, { options, plan: { ...quiet, backups: 2, rejoinAfterMs: 2, isolate: { replica: 'backup', atMs } } }));
    note(runSeed(campaign, seed++, { options, plan: { ...quiet, backups: 2, rejoinAfterMs: 2, isolate: { replica: 'live', atMs } } }));
  }
  assert.deepEqual(failures, []);
  assert.equal(seen.lost, 0, `every run keeps its guest: ${JSON.stringify(seen)}`);
  assert.ok(seen.promotions >= 8 + 3 + 1, `a promotion per crash of the live replica: ${JSON.stringify(seen)}`);
  assert.ok(seen.fenced >= 1, `a primary dropped a backup, naming the others: ${JSON.stringify(seen)}`);
});

test(`${campaignSeeds} random seeds: crashes, partitions, resets, latencies, every protocol variant`, { timeout: 30 * 60_000 }, async () => {
  const summary = await runSeedsInParallel(readKernelBytes(kernelPath), 1, campaignSeeds, Math.max(1, os.availableParallelism()));
  assert.equal(summary.seeds, campaignSeeds);
  assert.deepEqual(summary.failures, [], summary.failures.join('\n\n'));
  // The faults must really bite: many runs go through a failover, some through several, many with t > 1.
  assert.ok(summary.failovers > campaignSeeds * 0.3, `${summary.failovers} failovers in ${campaignSeeds} seeds`);
  assert.ok(summary.promotions > summary.failovers, `${summary.promotions} promotions in ${summary.failovers} runs with a failover`);
  assert.ok(summary.withBackups > campaignSeeds / 5, `${summary.withBackups} of ${campaignSeeds} seeds with 2 or 3 backups`);
  // Small entry budgets really end epochs early (at exact counts, which the backup follows).
  assert.ok(summary.epochsEndedEarly > campaignSeeds / 2, `${summary.epochsEndedEarly} epochs ended early in ${campaignSeeds} seeds`);
  assert.ok(summary.epochsMerged > campaignSeeds / 10, `${summary.epochsMerged} epochs went on past boundaries with nothing to deliver in ${campaignSeeds} seeds`);
  assert.ok(summary.stepsRunOn > campaignSeeds / 10, `${summary.stepsRunOn} steps ran on past an epoch that ended at an output dealt with at once, in ${campaignSeeds} seeds`);
  // Backups read data from the shared disk themselves (the seeds whose disk completes at once).
  assert.ok(summary.sharedReads > campaignSeeds / 10, `${summary.sharedReads} shared reads in ${campaignSeeds} seeds`);
  // Reads answered at once, inside the guest's instruction, whatever the disk's latency.
  assert.ok(summary.readsAtOnce > campaignSeeds, `${summary.readsAtOnce} reads answered at once in ${campaignSeeds} seeds`);
});
