/**
 * Runs the seeded simulator over many seeds with the simulator workload
 * (guests/tests/sim_workload.c): the reference run once, then each seed with the faults and
 * protocol options it chooses. A failing seed is reported with everything needed to replay it
 * (`understudy simulate --seed N`): the same seed always gives the same run.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadImage, type LoadedImage } from '../machine/loader/elf.js';
import type { CpuMode } from '../machine/board.js';
import { defaultReplicationOptions, type ReplicationOptions } from '../replication/replica.js';
import { epochEntryBytesMin } from '../replication/entry-budget.js';
import { checkOutputWithRepeats } from './console-check.js';
import { Prng } from './prng.js';
import { referenceRun, Simulation, type FaultPlan, type SimulationResult } from './simulation.js';

/** The workload's disk: 64 KiB (it uses 48 sectors). */
export const simulatorDiskBytes = 64 * 1024;
/** The workload links its stack at 16 MiB. */
export const simulatorRamBytes = 16 * 1024 * 1024;
export const simulatorWorkload = (projectRoot: string): string => path.join(projectRoot, 'guests/build/sim_workload.elf');

export interface Campaign {
  readonly kernel: LoadedImage;
  readonly disk: Uint8Array;
  readonly reference: { readonly console: string; readonly disk: Uint8Array };
}

export function prepareCampaign(kernel: LoadedImage): Campaign {
  const disk = new Uint8Array(simulatorDiskBytes);
  const reference = referenceRun(kernel, disk, simulatorRamBytes);
  if (reference.status !== 0) throw new Error(`the simulator workload fails on its own (status ${reference.status}):\n${reference.console}`);
  return { kernel, disk, reference };
}

/**
 * The protocol options a seed runs with: every variant, several epoch lengths, state digests
 * off and at several intervals (no seed corrupts a machine, so none may diverge), and log entry
 * budgets from the default down to the smallest, so that epochs end early at exact counts
 * (a few readings fill a tiny entry; a disk completion larger than it travels in an epoch of
 * its own).
 */
export function seedOptions(seed: number): ReplicationOptions {
  const prng = new Prng(seed ^ 0x5eed0001);
  const options: ReplicationOptions = {
    ...defaultReplicationOptions,
    // The simulator's link and hosts are never starved: it keeps the short timeout, so that
    // its partitions are detected within its short runs.
    failureTimeoutMs: 500,
    // 1K: an epoch is 0.05 ms of the simulated CPU, so that boundaries with nothing to deliver are skipped (fixedEpochs).
    epochInstructions: prng.pick([1_000, 5_000, 20_000, 50_000]),
    protocol: prng.chance(0.3) ? 'original' : 'relaxed',
    pendingIo: prng.chance(0.3) ? 'uncertain' : 'reissue',
    digestEveryEpochs: prng.pick([0, 1, 3, 16, defaultReplicationOptions.digestEveryEpochs]),
  };
  const budget = prng.float();
  const entries: ReplicationOptions =
    budget < 0.2 ? { ...options, epochEntryBytesMax: epochEntryBytesMin + prng.int(0, 200) }
    : budget < 0.4 ? { ...options, epochEntryBytesMax: prng.int(1_000, 3_000) }
    : options;
  // A join of a running guest is mostly by live copy (a few pages a step, so that the guest
  // runs and writes during it, and copies take several rounds), sometimes of the whole state at once.
  const joins: ReplicationOptions = prng.chance(0.2) ? { ...entries, liveCopy: false } : { ...entries, liveCopyStepBytes: prng.int(1, 8) * 4096, liveCopyFinalPages: prng.int(0, 4) };
  // Epochs merged where their boundaries have nothing to deliver (the default), or fixed as in the paper.
  const epochs: ReplicationOptions = prng.chance(0.3) ? { ...joins, fixedEpochs: true } : joins;
  // Backups read their reads' data from the shared disk (the default), or take it from the log.
  return prng.chance(0.2) ? { ...epochs, readsInLog: true } : epochs;
}

/**
 * Whether a seed's disk answers writes at once (`DiskConfig.writeBack`, what `run` and `pair`
 * use with the reissue policy), or completes them at the next boundary, early (the primary's
 * `completeWritesEarly`) or from the disk: both ways stay covered.
 */
export function seedWriteBack(seed: number, options: ReplicationOptions): boolean {
  return options.pendingIo === 'reissue' && new Prng(seed ^ 0x5eed0002).chance(0.7);
}

export function runSeed(campaign: Campaign, seed: number, overrides: { options?: ReplicationOptions; plan?: FaultPlan; primaryCpu?: CpuMode; writeBack?: boolean } = {}): SimulationResult {
  const options = overrides.options ?? seedOptions(seed);
  const simulation = new Simulation({
    seed,
    kernel: campaign.kernel,
    disk: campaign.disk,
    ramBytes: simulatorRamBytes,
    options,
    writeBack: overrides.writeBack ?? seedWriteBack(seed, options),
    expected: { disk: campaign.reference.disk, console: campaign.reference.console },
    checkConsole: (observed) => checkOutputWithRepeats(campaign.reference.console, observed),
    ...(overrides.plan === undefined ? {} : { plan: overrides.plan }),
    ...(overrides.primaryCpu === undefined ? {} : { primaryCpu: overrides.primaryCpu }),
  });
  return simulation.run();
}

/** A failing seed, as a report a person can act on. */
export function describeFailure(result: SimulationResult, traceLines = 25): string {
  const options = seedOptions(result.seed);
  return [
    `seed ${result.seed} failed (replay: npx understudy simulate --seed ${result.seed} --verbose)`,
    `  options: epoch ${options.epochInstructions}, ${options.protocol}, pending I/O ${options.pendingIo}, ` +
      `digest every ${options.digestEveryEpochs}, entry budget ${options.epochEntryBytesMax ?? 'default'}${options.fixedEpochs === true ? ', fixed epochs' : ''}${options.readsInLog === true ? ', reads in the log' : ''}` +
      `${seedWriteBack(result.seed, options) ? ', a write-back disk' : ''}`,
    `  faults:  ${JSON.stringify(result.plan)}`,
    ...result.failures.map((failure) => `  FAIL ${failure}`),
    `  replicas: ${JSON.stringify(result.outcome)}`,
    '  trace (last lines):',
    ...result.trace.slice(-traceLines).map((line) => `    ${line}`),
  ].join('\n');
}

/** A range of seeds for one worker; the workload travels as the file's bytes (workers read no files). */
export interface SeedRange {
  readonly kernelBytes: Uint8Array;
  readonly first: number;
  readonly count: number;
}

export interface RangeSummary {
  readonly seeds: number;
  readonly failures: string[];
  /** How the runs ended, by kind of fault, for checking that faults really happened. */
  readonly outcomes: Record<string, number>;
  readonly failovers: number;
  readonly failoverMsTotal: number;
  /** Epochs the primaries ended early because their log entry was full. */
  readonly epochsEndedEarly: number;
  /** Epochs that went on past boundaries with nothing to deliver. */
  readonly epochsMerged: number;
  readonly stepsRunOn: number;
  readonly sharedReads: number;
  /** Reads the live replicas answered at once, inside the guest's instruction. */
  readonly readsAtOnce: number;
  /** Promotions in all runs (a run with repeated failures has several). */
  readonly promotions: number;
  /** Seeds with more than one backup. */
  readonly withBackups: number;
  /** Seeds whose crashes left no replica holding the guest. */
  readonly guestsLost: number;
}

export function runRange(range: SeedRange): RangeSummary {
  const campaign = prepareCampaign(loadImage(range.kernelBytes));
  const failures: string[] = [];
  const outcomes: Record<string, number> = {};
  let failovers = 0;
  let promotions = 0;
  let withBackups = 0;
  let guestsLost = 0;
  let failoverMsTotal = 0;
  let epochsEndedEarly = 0;
  let epochsMerged = 0;
  let stepsRunOn = 0;
  let sharedReads = 0;
  let readsAtOnce = 0;
  for (let seed = range.first; seed < range.first + range.count; seed++) {
    const result = runSeed(campaign, seed);
    epochsEndedEarly += result.epochsEndedEarly;
    epochsMerged += result.epochsMerged;
    stepsRunOn += result.stepsRunOn;
    sharedReads += result.sharedReads;
    readsAtOnce += result.readsAtOnce;
    if (result.failures.length > 0) failures.push(describeFailure(result));
    const plan = result.plan;
    const kind =
      plan.crash !== undefined ? `crash ${plan.crash.replica}`
      : plan.crashes !== undefined ? `${plan.crashes.length} crashes`
      : plan.partitionAtMs !== undefined || plan.isolate !== undefined ? 'partition'
      : plan.resetAtMs !== undefined ? 'reset'
      : 'none';
    const ends = Object.entries(result.outcome).map(([name, outcome]) => `${name} ${outcome}`).join('; ');
    const key = `t=${plan.backups ?? 1}, ${kind}: ${result.guestLost ? 'guest lost to crashes' : ends}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    promotions += result.failovers;
    if ((plan.backups ?? 1) > 1) withBackups++;
    if (result.guestLost) guestsLost++;
    if (result.failoverMs !== undefined) {
      failovers++;
      failoverMsTotal += result.failoverMs;
    }
  }
  return { seeds: range.count, failures, outcomes, failovers, failoverMsTotal, epochsEndedEarly, epochsMerged, stepsRunOn, sharedReads, readsAtOnce, promotions, withBackups, guestsLost };
}

/** Runs seeds [first, first + count) of the workload in `kernelBytes` on `threads` worker threads and merges their summaries. */
export async function runSeedsInParallel(kernelBytes: Uint8Array, first: number, count: number, threads: number): Promise<RangeSummary> {
  const size = Math.ceil(count / threads);
  const ranges: SeedRange[] = [];
  for (let start = first; start < first + count; start += size) ranges.push({ kernelBytes, first: start, count: Math.min(size, first + count - start) });
  const summaries = await Promise.all(
    ranges.map(
      (range) =>
        new Promise<RangeSummary>((resolve, reject) => {
          const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: range });
          worker.once('message', (summary: RangeSummary) => resolve(summary));
          worker.once('error', reject);
          worker.once('exit', (code) => {
            if (code !== 0) reject(new Error(`simulator worker for seeds ${range.first}.. exited with ${code}`));
          });
        }),
    ),
  );
  const outcomes: Record<string, number> = {};
  for (const summary of summaries) for (const [key, value] of Object.entries(summary.outcomes)) outcomes[key] = (outcomes[key] ?? 0) + value;
  return {
    seeds: summaries.reduce((sum, s) => sum + s.seeds, 0),
    failures: summaries.flatMap((s) => s.failures),
    outcomes,
    failovers: summaries.reduce((sum, s) => sum + s.failovers, 0),
    failoverMsTotal: summaries.reduce((sum, s) => sum + s.failoverMsTotal, 0),
    epochsEndedEarly: summaries.reduce((sum, s) => sum + s.epochsEndedEarly, 0),
    epochsMerged: summaries.reduce((sum, s) => sum + s.epochsMerged, 0),
    stepsRunOn: summaries.reduce((sum, s) => sum + s.stepsRunOn, 0),
    sharedReads: summaries.reduce((sum, s) => sum + s.sharedReads, 0),
    readsAtOnce: summaries.reduce((sum, s) => sum + s.readsAtOnce, 0),
    promotions: summaries.reduce((sum, s) => sum + s.promotions, 0),
    withBackups: summaries.reduce((sum, s) => sum + s.withBackups, 0),
    guestsLost: summaries.reduce((sum, s) => sum + s.guestsLost, 0),
  };
}
