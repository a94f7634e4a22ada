/**
 * The protection benchmark's tables and plots, on fixed results: NP is the ratio of medians,
 * the paper's values stand beside ours, and the plot renders to SVG headless.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderSvg } from './plot.js';
import { costTable, epochLabel, linkTable, median, normalizedPerformance, npPlotSpec, pairRatios, npTable, reportMarkdown, type BenchResults, type RunMeasurement } from './protection-report.js';
import { sweepSettings } from './protection.js';

const run = (phases: RunMeasurement['phases'], traffic?: RunMeasurement['traffic']): RunMeasurement => ({ phases, wallSeconds: 2, cpuSeconds: 1.5, ...(traffic === undefined ? {} : { traffic }) });

const results: BenchResults = {
  date: '2026-12-05',
  machine: 'a test machine',
  command: 'understudy bench replication --quick',
  notes: ['a note'],
  links: [
    { name: 'unthrottled', rateMbitPerSecond: undefined },
    { name: '10 Mbit/s', rateMbitPerSecond: 10 },
  ],
  workloads: [
    {
      workload: 'diskbench',
      phases: ['write', 'read'],
      baseline: [run({ write: 1, read: 2 }), run({ write: 3, read: 2 }), run({ write: 2, read: 2 })],
      protected: [
        { setting: { epochInstructions: 1000, protocol: 'original', link: 'unthrottled' }, runs: [run({ write: 4, read: 5 }, { bytes: 8000, epochs: 100, seconds: 2, primaryMessages: 150, backupMessages: 100 })] },
        { setting: { epochInstructions: 1000, protocol: 'relaxed', link: 'unthrottled' }, runs: [run({ write: 3, read: 4 })] },
        { setting: { epochInstructions: 4_000_000, protocol: 'relaxed', link: '10 Mbit/s' }, runs: [run({ write: 6, read: 8 })] },
      ],
    },
  ],
};

test('median of an odd and an even count; epoch labels', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.deepEqual([1000, 385_000, 1_000_000, 4_000_000, 1500].map(epochLabel), ['1K', '385K', '1M', '4M', '1500']);
});

test('NP is the median time protected over the median time under run', () => {
  const [disk] = results.workloads;
  assert.equal(normalizedPerformance(disk!, 'write', disk!.protected[0]!), 2);
  assert.equal(normalizedPerformance(disk!, 'read', disk!.protected[0]!), 2.5);
});

test('with pairs, NP is the median of each protected run over the run under `run` taken before it', () => {
  const [disk] = results.workloads;
  // A host that slowed down halfway: the medians' ratio would say 3.5 / 1.5; the pairs say 1.2.
  const runs = [run({ write: 1.2 }), run({ write: 6 }), run({ write: 1.3 })];
  const baselines = [run({ write: 1 }), run({ write: 5 }), run({ write: 1 })];
  assert.deepEqual(pairRatios({ runs, baselines }, 'write')?.ratios.map((ratio) => ratio.toFixed(2)), ['1.20', '1.20', '1.30']);
  assert.equal(normalizedPerformance(disk!, 'write', { runs, baselines }), 1.2);
  assert.equal(pairRatios({ runs, baselines }, 'read'), undefined, 'no phase timed: no pairs');
  assert.equal(normalizedPerformance(disk!, 'write', { runs, baselines: baselines.slice(1) }), 1.3 / 2, 'pairs that do not line up: the medians');
});

test("the NP table has a row per epoch and the paper's values beside ours", () => {
  const table = npTable(results, 'unthrottled');
  assert.match(table, /^\| epoch \| writes orig\. \| writes relaxed \| reads orig\. \| reads relaxed \|$/m);
  assert.match(table, /^\| 1K \| 2\.00 \(1\.87\) \| 1\.50 \(1\.70\) \| 2\.50 \(2\.32\) \| 2\.00 \(1\.92\) \|$/m);
  assert.doesNotMatch(table, /4M/);
  assert.match(npTable(results, '10 Mbit/s'), /^\| 4M \| {2}\| 3\.00 \| {2}\| 4\.00 \|$/m);
});

test('the cost table: CPU beside wall time, bandwidth, bytes and messages per epoch', () => {
  const table = costTable(results);
  assert.match(table, /\| diskbench \| unthrottled \| original \| 1K \| 2\.00 \| 1\.50 \| 0\.03 \| 80 \| 1\.50 \+ 1\.00 \|/);
  assert.match(table, /\| diskbench \| `run` \|/);
});

test('the report links its plots; a plot renders to SVG with our series and the paper\'s', async () => {
  const markdown = reportMarkdown(results, new Map([['write', 'w.svg']]));
  assert.match(markdown, /## NP, link unthrottled/);
  assert.match(markdown, /!\[NP against epoch length: sync disk writes \(diskbench\)\]\(w\.svg\)/);
  assert.equal(npPlotSpec(results, 'cpu'), undefined);
  const spec = npPlotSpec(results, 'write')!;
  const svg = await renderSvg(spec);
  assert.match(svg, /^<svg /);
  for (const series of ['original, unthrottled', 'relaxed, 10 Mbit/s', 'paper, original', 'paper, relaxed']) assert.ok(svg.includes(series), series);
});

test('the sweep measures throttled links only at the chosen epochs', () => {
  const settings = sweepSettings({ epochs: [1000, 4000, 32000], protocols: ['relaxed'], links: results.links, throttledEpochs: [32000] });
  assert.deepEqual(
    settings.map((setting) => `${setting.link} ${setting.epochInstructions}`),
    ['unthrottled 1000', 'unthrottled 4000', 'unthrottled 32000', '10 Mbit/s 32000'],
  );
});

test("the link table: CPU-bound NP at 32K epochs by link, beside the paper's Ethernet and ATM", () => {
  const cpu: BenchResults = {
    ...results,
    links: [...results.links, { name: '155 Mbit/s', rateMbitPerSecond: 155 }],
    workloads: [
      {
        workload: 'cpubench',
        phases: ['cpu'],
        baseline: [run({ cpu: 2 })],
        protected: [
          { setting: { epochInstructions: 32_000, protocol: 'relaxed', link: 'unthrottled' }, runs: [run({ cpu: 3 })] },
          { setting: { epochInstructions: 32_000, protocol: 'original', link: '10 Mbit/s' }, runs: [run({ cpu: 5 })] },
          { setting: { epochInstructions: 4000, protocol: 'original', link: '155 Mbit/s' }, runs: [run({ cpu: 9 })] },
          { setting: { epochInstructions: 4000, protocol: 'relaxed', link: '10 Mbit/s' }, runs: [run({ cpu: 4 })] },
        ],
      },
    ],
  };
  assert.equal(linkTable(cpu), ['| link | original | relaxed | paper |', '| --- | --- | --- | --- |', '| unthrottled | – | 1.50 |  |', '| 10 Mbit/s | 2.50 | – | 1.84 (Ethernet) |', ''].join('\n'));
  // The paper's Table 1 (Ethernet) stands beside loopback and 10 Mbit/s, not beside 155 Mbit/s.
  const markdown = reportMarkdown(cpu, new Map());
  assert.match(markdown, /## NP, link 155 Mbit\/s\n\n\| epoch \| CPU orig\. \| CPU relaxed \|\n\| --- \| --- \| --- \|\n\| 4K \| 4\.50 \| {2}\|/);
  assert.match(markdown, /## NP, link 10 Mbit\/s\n\n[^#]*\| 4K \| {2}\(6\.50\) \| 2\.00 \(3\.21\) \|/);
});

test('a workload measured on two tiers: a table, a cost row, a link row and a plot series per tier, each named', () => {
  const onTier = (cpu: string, protectedSeconds: number): BenchResults['workloads'][number] => ({
    workload: 'cpubench',
    cpu,
    phases: ['cpu'],
    baseline: [run({ cpu: 2 })],
    protected: [{ setting: { epochInstructions: 32_000, protocol: 'relaxed', link: 'unthrottled' }, runs: [run({ cpu: protectedSeconds })] }],
  });
  const tiers: BenchResults = { ...results, links: [results.links[0]!], workloads: [onTier('interp', 3), onTier('jit', 5)] };
  assert.match(npTable(tiers, 'unthrottled', false, tiers.workloads[0]), /^\| 32K \| {2}\| 1\.50 \|$/m);
  assert.match(npTable(tiers, 'unthrottled', false, tiers.workloads[1]), /^\| 32K \| {2}\| 2\.50 \|$/m);
  const markdown = reportMarkdown(tiers, new Map());
  assert.match(markdown, /cpubench, --cpu interp:\n\n\| epoch \| CPU orig\. \| CPU relaxed \|\n\| --- \| --- \| --- \|\n\| 32K \| {2}\| 1\.50 \|/);
  assert.match(markdown, /cpubench, --cpu jit:\n\n\| epoch \| CPU orig\. \| CPU relaxed \|\n\| --- \| --- \| --- \|\n\| 32K \| {2}\| 2\.50 \|/);
  assert.match(linkTable(tiers), /^\| unthrottled, --cpu interp \| – \| 1\.50 \| {2}\|\n\| unthrottled, --cpu jit \| – \| 2\.50 \| {2}\|$/m);
  assert.match(costTable(tiers), /^\| cpubench, --cpu jit \| unthrottled \| relaxed \| 32K \|/m);
  const series = (npPlotSpec(tiers, 'cpu')!.layer as { data: { values: { series: string }[] } }[])[0]!.data.values.map((point) => point.series);
  assert.deepEqual(series, ['relaxed, unthrottled, --cpu interp', 'relaxed, unthrottled, --cpu jit']);
});
