/**
 * How a process that runs a machine starts Node.js. bin/understudy.js's first line carries the
 * same flags (`env -S`), so that `npx understudy` and the script started by its path have them;
 * processes that understudy starts itself (a pair's replicas, the demo's pair, the benchmarks'
 * runs) get them from here. `node bin/understudy.js` runs without them, a little slower.
 *
 * - `--v8-pool-size=1`: one worker thread for V8's background work (compiling the tier's blocks
 *   and hot JavaScript, garbage collection), where Node starts four. The guest runs on the main
 *   thread; on a two-core host four workers compiling at once took the main thread's core from
 *   it in slices of some 5 ms, and mixbench's whole run took 11% longer (docs/BENCHMARKS.md,
 *   2026-12-07, the V8 worker pool).
 */
import * as path from 'node:path';
import { projectRoot } from './guest-image.js';

export const machineNodeFlags: readonly string[] = ['--v8-pool-size=1'];

/** understudy's command line script. */
export const cliScript = path.join(projectRoot, 'bin/understudy.js');

/** Node's arguments that run understudy's command line with `args`: `spawn(process.execPath, cliArguments(args))`. */
export function cliArguments(args: readonly string[]): string[] {
  return [...machineNodeFlags, cliScript, ...args];
}

/** Node's own arguments for a child forked to run understudy's command line: this process's, and machineNodeFlags. */
export function cliExecArgv(): string[] {
  return [...process.execArgv.filter((flag) => !machineNodeFlags.some((own) => flag.split('=')[0] === own.split('=')[0])), ...machineNodeFlags];
}
