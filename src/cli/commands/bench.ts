/** `understudy bench replication`: the cost of protection (host/bench/protection.ts). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../../host/guest-image.js';
import { epochLabel, workloadNames, type BenchResults, type LinkSetting, type Protocol } from '../../host/bench/protection-report.js';
import { defaultCpu, parseInteger, parseOptions, UsageError } from '../options.js';
import { epochInstructionsMax, epochInstructionsMin } from '../../replication/replica.js';

/** The paper's epoch lengths (1K to 8K, its model's 32K and 385K) and longer ones. */
const fullEpochs = [1_000, 2_000, 4_000, 8_000, 32_000, 385_000, 1_000_000, 4_000_000];
/** The throttled links are measured at these only, so that the whole sweep takes about an hour. */
const fullThrottledEpochs = [4_000, 32_000, 1_000_000];
const quickEpochs = [4_000, 1_000_000];
const links: readonly LinkSetting[] = [
  { name: 'unthrottled', rateMbitPerSecond: undefined },
  { name: '155 Mbit/s', rateMbitPerSecond: 155 },
  { name: '10 Mbit/s', rateMbitPerSecond: 10 },
];
const defaultLatencyMs = 0.1;

/** Cells of the full sweep: every workload at every unthrottled epoch and protocol, and at the throttled epochs on each throttled link. */
const fullCells = workloadNames.length * 2 * (fullEpochs.length + (links.length - 1) * fullThrottledEpochs.length);

export const benchHelp = `usage: understudy bench replication [options]

The cost of protection, side by side on this machine: each workload under \`run\` (the
baseline) and under a primary and a backup (each pinned to a core of its own: taskset -c 0
and -c 1), for each epoch length, protocol and link; normalized performance (NP = time
protected / time under run) beside the paper's Table 1, the primary's CPU time beside its wall
time, log bandwidth and messages per epoch, and SVG plots of NP against epoch length. Progress
on stderr; the report (Markdown, JSON and SVGs, named by date), rewritten after every cell, in --out.

The full sweep: cpubench, diskbench, and Linux's benchmarks and its network service (when
.cache/linux/Image exists); epochs of ${fullEpochs.map(epochLabel).join(', ')} instructions;
original and relaxed; the link unthrottled at every epoch length, 155 and 10 Mbit/s at
${fullThrottledEpochs.map(epochLabel).join(', ')}; two runs a cell: ${fullCells} cells, about 20 minutes on a two-core machine.

options:
  --quick              a small subset in a few minutes: cpubench and diskbench, epochs 4K and
                       1M, relaxed, unthrottled, three runs each
  --workloads LIST     of cpu, disk, linux, net (comma-separated; default all). net: the Linux
                       guest's HTTP service (filehttpd through passt), driven from here on
                       one keep-alive connection: 1,000 GETs of 1 KiB, then 40 PUTs of 64 KiB
  --cpus LIST          the tiers to measure each workload on, of interp, jit, wasm (e.g. jit,wasm
                       side by side; default the default tier, as --cpu)
  --epochs LIST        epoch lengths in instructions (e.g. 1000,32000)
  --protocols LIST     of original, relaxed (default both)
  --fixed-epochs       the protected runs end every epoch after exactly its instructions, as
                       the paper's protocol (default: as the replicas do by default, skipping
                       boundaries with nothing to deliver)
  --links LIST         of unthrottled, 155, 10 (Mbit/s; default all)
  --latency MS         one-way latency of the throttled links (default ${defaultLatencyMs})
  --runs N             runs per cell, the median is reported (default 2; --quick: 3)
  --out DIR            where the report goes (default docs/bench)
  --report FILE.json   measure nothing: draw the report and plots again from a sweep's
                       JSON, beside it

The other replication measurements (failover times, log traffic, TLS, state digests) are in
bench/replication.ts: npm run bench:replication:sections (BENCH_ONLY=failover|traffic|np|tls|digests).
`;

function list<T extends string>(text: string, option: string, allowed: readonly T[]): T[] {
  const items = text.split(',').filter((item) => item !== '');
  for (const item of items) if (!(allowed as readonly string[]).includes(item)) throw new UsageError(`${option}: "${item}" is not one of ${allowed.join(', ')}`);
  if (items.length === 0) throw new UsageError(`${option} needs one of ${allowed.join(', ')}`);
  return items as T[];
}

export async function benchCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what !== 'replication') throw new UsageError(`bench: the benchmark is "replication" (understudy bench replication), not ${what === undefined ? 'nothing' : `"${what}"`}`);
  const { values } = parseOptions(rest, {
    quick: { type: 'boolean' },
    workloads: { type: 'string' },
    cpus: { type: 'string' },
    epochs: { type: 'string' },
    protocols: { type: 'string' },
    'fixed-epochs': { type: 'boolean' },
    links: { type: 'string' },
    latency: { type: 'string' },
    runs: { type: 'string' },
    out: { type: 'string' },
    report: { type: 'string' },
  });
  if (values.report !== undefined) {
    const { renderReport } = await import('../../host/bench/protection.js');
    const json = path.resolve(values.report);
    let results: BenchResults;
    try {
      results = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchResults;
    } catch (error) {
      throw new UsageError(`--report: cannot read ${values.report}: ${error instanceof Error ? error.message : String(error)}`);
    }
    process.stderr.write(`understudy bench: the report is in ${await renderReport(results, json.replace(/\.json$/, ''))}\n`);
    return 0;
  }
  const quick = values.quick === true;
  const epochs =
    values.epochs === undefined
      ? quick ? quickEpochs : fullEpochs
      : values.epochs.split(',').map((text) => parseInteger(text, '--epochs', { min: epochInstructionsMin, max: epochInstructionsMax, unit: 'instructions' }));
  const linkNames = values.links === undefined ? (quick ? ['unthrottled'] : ['unthrottled', '155', '10']) : list(values.links, '--links', ['unthrottled', '155', '10'] as const);
  const latencyMs = values.latency === undefined ? defaultLatencyMs : Number(values.latency);
  if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new UsageError(`--latency needs a number of ms, 0 or more, not "${values.latency}"`);
  const { runProtectionBench } = await import('../../host/bench/protection.js');
  const report = await runProtectionBench({
    workloads: values.workloads === undefined ? (quick ? ['cpu', 'disk'] : [...workloadNames]) : list(values.workloads, '--workloads', workloadNames),
    cpus: values.cpus === undefined ? [defaultCpu()] : list(values.cpus, '--cpus', ['interp', 'jit', 'wasm'] as const),
    epochs,
    protocols: values.protocols === undefined ? (quick ? ['relaxed'] : ['original', 'relaxed']) : list<Protocol>(values.protocols, '--protocols', ['original', 'relaxed']),
    fixedEpochs: values['fixed-epochs'] === true,
    links: links.filter((link) => linkNames.some((name) => link.name.startsWith(name))),
    throttledEpochs: values.epochs === undefined && !quick ? fullThrottledEpochs : undefined,
    latencyMs,
    runs: values.runs === undefined ? (quick ? 3 : 2) : parseInteger(values.runs, '--runs', { min: 1, max: 100, unit: 'runs' }),
    outDirectory: path.resolve(values.out ?? path.join(projectRoot, 'docs/bench')),
    reportName: quick ? 'protection-quick' : 'protection',
    command: ['understudy', 'bench', ...argv].join(' '),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stderr.write(`understudy bench: the report is in ${report}\n`);
  return 0;
}
