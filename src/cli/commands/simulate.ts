/**
 * `understudy simulate`: the seeded simulator from the command line. `--seed N` replays one
 * seed exactly (with `--verbose`, its whole trace); `--seeds COUNT` runs a campaign.
 */
import * as os from 'node:os';
import { describeFailure, prepareCampaign, runSeed, runSeedsInParallel, seedOptions, seedWriteBack, simulatorWorkload } from '../../simulator/campaign.js';
import { projectRoot, readKernel, readKernelBytes } from '../../host/guest-image.js';
import { parseCount, parseOptions, UsageError } from '../options.js';

export const simulateHelp = `usage: understudy simulate (--seed N | --seeds COUNT [--first N])

The seeded simulator: a primary, a backup, their link and a shared disk in one process, with
crashes, partitions and resets drawn from each seed; invariants checked throughout.

simulate options:
  --seed N             run seed N (replays exactly); --verbose prints its trace
  --seeds COUNT        run COUNT seeds from --first (default 1), on every core
`;

export async function simulateCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, { seed: { type: 'string' }, seeds: { type: 'string' }, first: { type: 'string' }, verbose: { type: 'boolean' } });
  const kernelPath = simulatorWorkload(projectRoot);
  if (values.seed !== undefined) {
    const seed = parseCount(values.seed, '--seed');
    const result = runSeed(prepareCampaign(readKernel(kernelPath)), seed);
    const options = seedOptions(seed);
    const disk = seedWriteBack(seed, options) ? ', a write-back disk' : '';
    process.stdout.write(`seed ${seed}: epoch ${options.epochInstructions}, ${options.protocol}, pending I/O ${options.pendingIo}${disk}; faults ${JSON.stringify(result.plan)}\n`);
    if (values.verbose === true) process.stdout.write(`${result.trace.join('\n')}\n--- console ---\n${result.console}\n`);
    if (result.failures.length > 0) {
      process.stdout.write(`${describeFailure(result)}\n`);
      return 1;
    }
    process.stdout.write(`seed ${seed}: ok (${JSON.stringify(result.outcome)}, ${result.virtualMs.toFixed(1)} ms of virtual time)\n`);
    return 0;
  }
  if (values.seeds === undefined) throw new UsageError('simulate needs --seed N or --seeds COUNT');
  const count = parseCount(values.seeds, '--seeds');
  const first = values.first === undefined ? 1 : parseCount(values.first, '--first');
  const started = performance.now();
  const summary = await runSeedsInParallel(readKernelBytes(kernelPath), first, count, Math.max(1, os.availableParallelism()));
  for (const failure of summary.failures) process.stdout.write(`${failure}\n\n`);
  for (const [outcome, seeds] of Object.entries(summary.outcomes).sort((a, b) => b[1] - a[1])) process.stdout.write(`${String(seeds).padStart(6)}  ${outcome}\n`);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `${summary.seeds} seeds, ${summary.failures.length} failed, ${summary.failovers} failovers (mean ${(summary.failoverMsTotal / Math.max(1, summary.failovers)).toFixed(1)} ms virtual), ` +
        `${summary.promotions} promotions; ${summary.withBackups} seeds with 2-3 backups; ${summary.guestsLost} guests lost to more crashes than backups; ` +
        `${summary.sharedReads} shared reads, ${summary.readsAtOnce} reads answered at once; ${seconds.toFixed(1)} s\n`,
    );
  return summary.failures.length === 0 ? 0 : 1;
}
