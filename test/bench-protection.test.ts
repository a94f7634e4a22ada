/**
 * `understudy bench replication` on the smallest sweep (diskbench, one epoch length, relaxed,
 * loopback, one run): it measures (no figure is asserted: a benchmark prints figures, tests
 * assert behaviour) and leaves a report with the NP table, the traffic table and an SVG plot.
 * And bad options end in one line.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repoRoot, 'bin/understudy.js');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-test-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

function understudy(...args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

test('cpubench is timed by the guest: its NP comes from its own clock, under run and protected alike', async () => {
  const out = path.join(scratch, 'cpu');
  const result = await understudy('bench', 'replication', '--workloads', 'cpu', '--epochs', '1000000', '--protocols', 'relaxed', '--links', 'unthrottled', '--runs', '1', '--out', out);
  assert.equal(result.status, 0, result.stderr);
  const np = /cpu NP ([\d.]+)/.exec(result.stderr);
  assert.ok(np !== null, result.stderr);
  // The same work timed the same way on both sides: near 1, not a ratio of process start-ups.
  assert.ok(Number(np[1]) > 0.5 && Number(np[1]) < 4, result.stderr);
  const data = JSON.parse(fs.readFileSync(path.join(out, fs.readdirSync(out).find((file) => file.endsWith('.json'))!), 'utf8')) as {
    workloads: { baseline: { phases: { cpu?: number } }[]; protected: { runs: { phases: { cpu?: number } }[] }[] }[];
  };
  const [cpu] = data.workloads;
  for (const phases of [cpu!.baseline[0]!.phases, cpu!.protected[0]!.runs[0]!.phases]) assert.ok(phases.cpu !== undefined && phases.cpu > 0.01 && phases.cpu < 60, JSON.stringify(phases));
});

test('the smallest sweep shows its progress and leaves a report, its data and a plot', async () => {
  const out = path.join(scratch, 'report');
  const result = await understudy('bench', 'replication', '--workloads', 'disk', '--epochs', '1000000', '--protocols', 'relaxed', '--links', 'unthrottled', '--runs', '2', '--out', out);
  assert.equal(result.status, 0, result.stderr);
  // Pairs: a run under `run`, then the protected one, twice.
  const steps = [...result.stderr.matchAll(/\[0\/1 cells, [\d.]+ min\] diskbench, relaxed, epoch 1M, link unthrottled \((\d) of 2\): (under run|protected)/g)].map((match) => `${match[1]} ${match[2]}`);
  assert.deepEqual(steps, ['1 under run', '1 protected', '2 under run', '2 protected'], result.stderr);
  assert.match(result.stderr, /write NP [\d.]+ \(pairs [\d.]+–[\d.]+\), read NP [\d.]+ \(pairs [\d.]+–[\d.]+\)/);
  const files = fs.readdirSync(out);
  const report = files.find((file) => /^protection-\d{4}-\d\d-\d\d\.md$/.test(file));
  assert.ok(report !== undefined, files.join(', '));
  const markdown = fs.readFileSync(path.join(out, report), 'utf8');
  assert.match(markdown, /^\| 1M \| {2}\| [\d.]+ \| {2}\| [\d.]+ \|$/m, markdown);
  assert.match(markdown, /^\| diskbench \| unthrottled \| relaxed \| 1M \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \+ [\d.]+ \|$/m, markdown);
  const write = path.join(out, report.replace('.md', '-write.svg'));
  assert.match(fs.readFileSync(write, 'utf8'), /^<svg /);
  assert.ok(fs.existsSync(path.join(out, report.replace('.md', '.json'))));
});

test('the network service is driven from the host: its GETs and PUTs timed by the client under run and protected, with the log it cost', async () => {
  const out = path.join(scratch, 'net');
  const result = await understudy('bench', 'replication', '--workloads', 'net', '--epochs', '1000000', '--protocols', 'relaxed', '--links', 'unthrottled', '--runs', '1', '--out', out);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /network service, relaxed, epoch 1M, link unthrottled \(1 of 1\): protected/);
  assert.match(result.stderr, /net-get NP [\d.]+, net-put NP [\d.]+/);
  const data = JSON.parse(fs.readFileSync(path.join(out, fs.readdirSync(out).find((file) => file.endsWith('.json'))!), 'utf8')) as {
    workloads: { workload: string; baseline: { phases: Record<string, number> }[]; protected: { runs: { phases: Record<string, number>; traffic?: { bytes: number } }[] }[] }[];
  };
  const [net] = data.workloads;
  assert.equal(net!.workload, 'network service');
  const protectedRun = net!.protected[0]!.runs[0]!;
  for (const phases of [net!.baseline[0]!.phases, protectedRun.phases]) {
    for (const phase of ['net-get', 'net-put']) assert.ok(phases[phase] !== undefined && phases[phase] > 0.01 && phases[phase] < 120, JSON.stringify(phases));
  }
  // The PUTs' 2.5 MiB reached the guest through the log: every frame the primary received travels in it.
  assert.ok(protectedRun.traffic !== undefined && protectedRun.traffic.bytes > 40 * 64 * 1024, JSON.stringify(protectedRun.traffic));
  const files = fs.readdirSync(out);
  assert.ok(files.some((file) => file.endsWith('-net-get.svg')) && files.some((file) => file.endsWith('-net-put.svg')), files.join(', '));
});

test('bad options of bench end in one line', async () => {
  for (const args of [['bench', 'speed'], ['bench', 'replication', '--links', '7'], ['bench', 'replication', '--epochs', '10'], ['bench', 'replication', '--workloads', 'gpu'], ['bench', 'replication', '--cpus', 'lockstep']]) {
    const result = await understudy(...args);
    assert.equal(result.status, 2, args.join(' '));
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^understudy: /);
  }
});
