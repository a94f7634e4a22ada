/**
 * The protection benchmark's results as text and plots (pure: results in, Markdown and chart
 * specifications out). protection.ts measures; this file only presents what it measured,
 * beside the paper's figures (PAPER.md, "What they measured").
 */

export type Protocol = 'original' | 'relaxed';

/** The workloads `bench replication` measures (protection.ts runs them). */
export const workloadNames = ['cpu', 'disk', 'linux', 'net'] as const;
export type WorkloadName = (typeof workloadNames)[number];

/** What a workload's run is timed by: the guest's own timing of a phase, or its whole run. */
export type Phase = 'cpu' | 'write' | 'read' | 'linux-cpu' | 'linux-write' | 'linux-read' | 'net-get' | 'net-put';

export const phaseTitles: Readonly<Record<Phase, string>> = {
  cpu: 'CPU-bound (cpubench)',
  write: 'sync disk writes (diskbench)',
  read: 'sync disk reads (diskbench)',
  'linux-cpu': 'Linux cpubench',
  'linux-write': 'Linux diskbench write + fsync',
  'linux-read': 'Linux diskbench direct read',
  'net-get': 'network service: GETs of 1 KiB',
  'net-put': 'network service: PUTs of 64 KiB',
};

/** Short names for table columns. */
const phaseColumns: Readonly<Record<Phase, string>> = {
  cpu: 'CPU',
  write: 'writes',
  read: 'reads',
  'linux-cpu': 'Linux CPU',
  'linux-write': 'Linux writes',
  'linux-read': 'Linux reads',
  'net-get': 'GETs',
  'net-put': 'PUTs',
};

/** A link setting: its name in tables, and its rate (undefined: loopback as it is). */
export interface LinkSetting {
  readonly name: string;
  readonly rateMbitPerSecond: number | undefined;
}

/** One protected configuration. */
export interface Setting {
  readonly epochInstructions: number;
  readonly protocol: Protocol;
  readonly link: string;
}

/** What the primary's (and backup's) log summary said about one protected run. */
export interface Traffic {
  readonly bytes: number;
  readonly epochs: number;
  readonly seconds: number;
  readonly primaryMessages: number;
  readonly backupMessages: number;
}

/** One run, protected or not: seconds per phase, and the process's wall and CPU time. */
export interface RunMeasurement {
  readonly phases: Partial<Record<Phase, number>>;
  /** The primary's (or the lone machine's) lifetime and CPU time (user + system), seconds. */
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly traffic?: Traffic;
}

/** A workload's results: its baseline runs, and its runs under each protected setting. */
export interface WorkloadResult {
  readonly workload: string;
  /** The tier both runs used (`--cpu`), when the sweep compared tiers (--cpus); otherwise the default. */
  readonly cpu?: string;
  readonly phases: readonly Phase[];
  readonly baseline: readonly RunMeasurement[];
  readonly protected: readonly ProtectedCell[];
}

/**
 * The runs of one protected setting. `baselines[k]`, when present, is a run under `run` taken
 * just before `runs[k]` (a pair): on a host whose speed drifts over minutes, each protected
 * run is compared with a baseline taken beside it.
 */
export interface ProtectedCell {
  readonly setting: Setting;
  readonly runs: readonly RunMeasurement[];
  readonly baselines?: readonly RunMeasurement[];
}

export interface BenchResults {
  readonly date: string;
  readonly machine: string;
  readonly command: string;
  readonly notes: readonly string[];
  readonly links: readonly LinkSetting[];
  readonly workloads: readonly WorkloadResult[];
}

/** The paper's Table 1 (HP 9000/720, 10 Mbit/s Ethernet), by phase, protocol and epoch. */
export const paperNp: Readonly<Partial<Record<Phase, Readonly<Record<Protocol, Readonly<Record<number, number>>>>>>> = {
  cpu: { original: { 1000: 22.24, 2000: 11.83, 4000: 6.5, 8000: 3.83 }, relaxed: { 1000: 11.67, 2000: 4.49, 4000: 3.21, 8000: 2.2 } },
  write: { original: { 1000: 1.87, 2000: 1.71, 4000: 1.67, 8000: 1.64 }, relaxed: { 1000: 1.7, 2000: 1.66, 4000: 1.66, 8000: 1.64 } },
  read: { original: { 1000: 2.32, 2000: 2.1, 4000: 2.03, 8000: 1.98 }, relaxed: { 1000: 1.92, 2000: 1.76, 4000: 1.72, 8000: 1.7 } },
};

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** "1K", "385K", "1M", "4M". */
export function epochLabel(instructions: number): string {
  if (instructions >= 1_000_000 && instructions % 1_000_000 === 0) return `${instructions / 1_000_000}M`;
  if (instructions >= 1000 && instructions % 1000 === 0) return `${instructions / 1000}K`;
  return String(instructions);
}

/** Median seconds of a phase over runs (NaN if no run timed it). */
function phaseSeconds(runs: readonly RunMeasurement[], phase: Phase): number {
  return median(runs.map((run) => run.phases[phase]).filter((value): value is number => value !== undefined));
}

/**
 * NP of one phase under one setting: the median over the cell's pairs of time protected / time
 * under `run` taken beside it; for a cell without pairs (an older sweep's report), median
 * time protected / median time under `run`.
 */
export function normalizedPerformance(result: WorkloadResult, phase: Phase, cell: Pick<ProtectedCell, 'runs' | 'baselines'>): number {
  return pairRatios(cell, phase)?.median ?? phaseSeconds(cell.runs, phase) / phaseSeconds(result.baseline, phase);
}

/** The ratios of a cell's pairs for `phase` (each protected run over its baseline), with their median; undefined without pairs. */
export function pairRatios(cell: Pick<ProtectedCell, 'runs' | 'baselines'>, phase: Phase): { ratios: number[]; median: number } | undefined {
  const baselines = cell.baselines;
  if (baselines === undefined || baselines.length !== cell.runs.length) return undefined;
  const ratios = cell.runs.flatMap((run, index) => {
    const protectedSeconds = run.phases[phase];
    const baselineSeconds = baselines[index]!.phases[phase];
    return protectedSeconds === undefined || baselineSeconds === undefined ? [] : [protectedSeconds / baselineSeconds];
  });
  return ratios.length === 0 ? undefined : { ratios, median: median(ratios) };
}

/** One point of a plot or a table: NP of a phase under a setting. */
export interface NpPoint {
  readonly workload: string;
  readonly cpu: string | undefined;
  readonly phase: Phase;
  readonly epochInstructions: number;
  readonly protocol: Protocol;
  readonly link: string;
  readonly np: number;
}

export function npPoints(results: BenchResults): NpPoint[] {
  const points: NpPoint[] = [];
  for (const result of results.workloads) {
    for (const cell of result.protected) {
      for (const phase of result.phases) {
        const np = normalizedPerformance(result, phase, cell);
        if (Number.isFinite(np)) points.push({ workload: result.workload, cpu: result.cpu, phase, ...cell.setting, np });
      }
    }
  }
  return points;
}

/** A workload's name in tables and plots: with its tier when the sweep compared tiers. */
export function workloadLabel(result: Pick<WorkloadResult, 'workload' | 'cpu'>): string {
  return result.cpu === undefined ? result.workload : `${result.workload}, --cpu ${result.cpu}`;
}

const format = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');

/**
 * The NP table of one link: a row per epoch length, two columns (original, relaxed) per phase,
 * the paper's value (10 Mbit/s Ethernet) beside ours when `withPaper`; of one workload's
 * results when `only` names them.
 */
export function npTable(results: BenchResults, link: string, withPaper = true, only?: WorkloadResult): string {
  const points = npPoints(results).filter((point) => point.link === link && (only === undefined || (point.workload === only.workload && point.cpu === only.cpu)));
  const phases = [...new Set(points.map((point) => point.phase))];
  const epochs = [...new Set(points.map((point) => point.epochInstructions))].sort((a, b) => a - b);
  if (phases.length === 0) return '';
  const protocols: Protocol[] = ['original', 'relaxed'];
  const header = ['epoch', ...phases.flatMap((phase) => protocols.map((protocol) => `${phaseColumns[phase]} ${protocol === 'original' ? 'orig.' : 'relaxed'}`))];
  const rows = epochs.map((epoch) => [
    epochLabel(epoch),
    ...phases.flatMap((phase) =>
      protocols.map((protocol) => {
        const ours = points.find((point) => point.phase === phase && point.protocol === protocol && point.epochInstructions === epoch);
        const paper = withPaper ? paperNp[phase]?.[protocol][epoch] : undefined;
        return `${ours === undefined ? '' : format(ours.np)}${paper === undefined ? '' : ` (${format(paper)})`}`;
      }),
    ),
  ]);
  return markdownTable(header, rows);
}

/** CPU-bound NP at 32K-instruction epochs by link (and tier, when the sweep compared tiers), beside the paper's two links. */
export function linkTable(results: BenchResults): string {
  const points = npPoints(results).filter((point) => point.phase === 'cpu' && point.epochInstructions === 32_000);
  const paper: Readonly<Record<string, string>> = { '10 Mbit/s': '1.84 (Ethernet)', '155 Mbit/s': '1.66 (ATM)' };
  const tiers = [...new Set(points.map((point) => point.cpu))];
  const rows = results.links.flatMap((link) =>
    tiers
      .filter((cpu) => points.some((point) => point.link === link.name && point.cpu === cpu))
      .map((cpu) => [
        cpu === undefined ? link.name : `${link.name}, --cpu ${cpu}`,
        ...(['original', 'relaxed'] as const).map((protocol) => format(points.find((point) => point.link === link.name && point.cpu === cpu && point.protocol === protocol)?.np ?? NaN)),
        paper[link.name] ?? '',
      ]),
  );
  return rows.length === 0 ? '' : markdownTable(['link', 'original', 'relaxed', 'paper'], rows);
}

/** Per protected cell: the primary's wall and CPU time, and what crossed the link. */
export function costTable(results: BenchResults): string {
  const header = ['workload', 'link', 'protocol', 'epoch', 'primary wall s', 'primary CPU s', 'log Mbit/s', 'log bytes/epoch', 'messages/epoch (primary + backup)'];
  const rows: string[][] = [];
  for (const result of results.workloads) {
    rows.push([workloadLabel(result), '`run`', '', '', format(median(result.baseline.map((run) => run.wallSeconds))), format(median(result.baseline.map((run) => run.cpuSeconds))), '', '', '']);
    for (const cell of result.protected) {
      const traffic = cell.runs.map((run) => run.traffic).filter((value): value is Traffic => value !== undefined);
      const per = (pick: (t: Traffic) => number): number => median(traffic.map((t) => (t.epochs > 0 ? pick(t) / t.epochs : NaN)));
      const mbit = median(traffic.map((t) => (t.bytes * 8) / 1e6 / t.seconds));
      rows.push([
        workloadLabel(result),
        cell.setting.link,
        cell.setting.protocol,
        epochLabel(cell.setting.epochInstructions),
        format(median(cell.runs.map((run) => run.wallSeconds))),
        format(median(cell.runs.map((run) => run.cpuSeconds))),
        format(mbit, 2),
        format(per((t) => t.bytes), 0),
        `${format(per((t) => t.primaryMessages), 2)} + ${format(per((t) => t.backupMessages), 2)}`,
      ]);
    }
  }
  return markdownTable(header, rows);
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

/** The whole report in Markdown; `plots` are the SVG files' names beside it, by phase. */
export function reportMarkdown(results: BenchResults, plots: ReadonlyMap<Phase, string>): string {
  const parts = [
    `# The cost of protection: ${results.date}`,
    '',
    `Machine: ${results.machine}. Command: \`${results.command}\`.`,
    '',
    ...results.notes.map((note) => `- ${note}`),
    '',
    'NP = time under a primary and a backup / time of the same guest under `run`, each protected run against a',
    '`run` taken just before it, the median of those ratios (each workload, or each phase of one, as the guest\'s',
    "own clock timed it; a report of a sweep without pairs: the ratio of the medians). The paper's",
    'values (Table 1: HP 9000/720, 10 Mbit/s Ethernet) in brackets. Columns: CPU = cpubench; writes and',
    'reads = diskbench\'s phases; Linux = the Linux guest\'s cpubench and diskbench; GETs and PUTs = its',
    'network service, timed by the client.',
    '',
  ];
  for (const link of results.links) {
    // The paper's Table 1 was measured on 10 Mbit/s Ethernet: beside our loopback and our 10 Mbit/s only.
    // A table per workload: side by side, a dozen columns would not fit a page.
    // A workload measured on several tiers has a table per tier, each named.
    const tables = results.workloads
      .map((result) => ({ result, table: npTable(results, link.name, link.rateMbitPerSecond === undefined || link.rateMbitPerSecond === 10, result) }))
      .filter(({ table }) => table !== '');
    if (tables.length === 0) continue;
    parts.push(`## NP, link ${link.name}`, '', ...tables.flatMap(({ result, table }) => (result.cpu === undefined ? [table] : [`${workloadLabel(result)}:`, '', table])));
  }
  const links = linkTable(results);
  if (links !== '') parts.push('## The link at 32K-instruction epochs (CPU-bound)', '', "The paper: NP 1.84 on 10 Mbit/s Ethernet, 1.66 on a 155 Mbit/s ATM link.", '', links);
  parts.push('## Time and traffic', '', "The primary's wall time (its whole process, start-up included) beside its CPU time; the log traffic from the primary's log summary.", '', costTable(results));
  if (plots.size > 0) {
    parts.push('## Plots', '');
    for (const [phase, file] of plots) parts.push(`![NP against epoch length: ${phaseTitles[phase]}](${file})`, '');
  }
  return parts.join('\n');
}

/**
 * A Vega-Lite specification of NP against epoch length (log scale) for one phase: a line per
 * protocol and link, and the paper's points, as the paper's figures draw them.
 */
export function npPlotSpec(results: BenchResults, phase: Phase): Record<string, unknown> | undefined {
  const ours = npPoints(results)
    .filter((point) => point.phase === phase)
    .map((point) => ({ epoch: point.epochInstructions, np: point.np, series: `${point.protocol}, ${point.link}${point.cpu === undefined ? '' : `, --cpu ${point.cpu}`}` }));
  if (ours.length === 0) return undefined;
  const paper = Object.entries(paperNp[phase] ?? {}).flatMap(([protocol, values]) =>
    Object.entries(values).map(([epoch, np]) => ({ epoch: Number(epoch), np, series: `paper, ${protocol}` })),
  );
  const encoding = {
    x: { field: 'epoch', type: 'quantitative', title: 'epoch length (instructions)', scale: { type: 'log' }, axis: { values: [...new Set([...ours, ...paper].map((point) => point.epoch))].sort((a, b) => a - b), labelExpr: 'datum.value >= 1e6 ? datum.value / 1e6 + "M" : datum.value / 1e3 + "K"' } },
    y: { field: 'np', type: 'quantitative', title: 'normalized performance', scale: { type: 'log' } },
    color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 400 } },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `NP against epoch length: ${phaseTitles[phase]} (${results.date})`,
    width: 520,
    height: 320,
    layer: [
      { data: { values: ours }, mark: { type: 'line', point: true }, encoding },
      ...(paper.length === 0 ? [] : [{ data: { values: paper }, mark: { type: 'line', point: true, strokeDash: [4, 3] }, encoding }]),
    ],
  };
}
