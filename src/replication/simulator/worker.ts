/** A worker thread that runs a range of simulator seeds and reports a summary (for parallel campaigns). */
import { parentPort, workerData } from 'node:worker_threads';
import { readKernel } from '../../cli/machine-options.js';
import { describeFailure, prepareCampaign, runSeed } from './campaign.js';

export interface SeedRange {
  readonly kernelPath: string;
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
}

export function runRange(range: SeedRange): RangeSummary {
  const campaign = prepareCampaign(readKernel(range.kernelPath));
  const failures: string[] = [];
  const outcomes: Record<string, number> = {};
  let failovers = 0;
  let failoverMsTotal = 0;
  for (let seed = range.first; seed < range.first + range.count; seed++) {
    const result = runSeed(campaign, seed);
    if (result.failures.length > 0) failures.push(describeFailure(result));
    const plan = result.plan;
    const kind = plan.crash !== undefined ? `crash ${plan.crash.replica}` : plan.partitionAtMs !== undefined ? 'partition' : plan.resetAtMs !== undefined ? 'reset' : 'none';
    const key = `${kind}: primary ${result.outcome.primary}; backup ${result.outcome.backup}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (result.failoverMs !== undefined) {
      failovers++;
      failoverMsTotal += result.failoverMs;
    }
  }
  return { seeds: range.count, failures, outcomes, failovers, failoverMsTotal };
}

if (parentPort !== null && workerData !== undefined) {
  parentPort.postMessage(runRange(workerData as SeedRange));
}
