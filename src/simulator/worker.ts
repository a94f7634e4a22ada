/** A worker thread of a parallel campaign: runs its range of seeds and posts the summary. */
import { parentPort, workerData } from 'node:worker_threads';
import { runRange, type SeedRange } from './campaign.js';

if (parentPort !== null && workerData !== undefined) {
  parentPort.postMessage(runRange(workerData as SeedRange));
}
