/**
 * `understudy pair` with real processes on loopback and real SIGKILL: the primary and the
 * backup are child processes of the pair, and the test kills one of them with SIGKILL when
 * the console shows a given line of the guest's output (a moment of the guest's progress,
 * never of the clock: the guest waits at its end until the test lets it finish). Whatever
 * dies, the world must see one machine: exit status 0, the console of a failure-free run
 * (with no more than the bounded repeats P8 allows after a failover, and nothing missing),
 * and exactly the disk image a failure-free run leaves.
 *
 * The kill lines come from a seeded generator and are printed before the trials run; a
 * failing trial names its command line and kill line, which replay it (the moment, not the
 * exact timing). UNDERSTUDY_PAIR_SEED=N picks other moments.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestElf } from './helpers.js';
import { Prng } from '../src/simulator/prng.js';
import {
  checkConsoleWithRepeats, createBlankDiskImage, expectedConsole, expectedDiskImage, fullShape, smallShape, type WorkloadShape,
} from './support/pair-workload.js';
import {
  assertImage, CliProcess, describeResult, failoverLines, firstDifference, freePort, median, pairReplicaPid, runCli, scratchDirectory, type FailoverLine,
} from './support/replica-processes.js';

/**
 * A pair run of the full workload takes 2-3 s (boot ~0.3 s per process, the state transfer,
 * then about 2 s of guest); the limits leave room for a loaded machine.
 */
const runTimeoutMs = 45_000;
const testTimeoutMs = 60_000;

/**
 * The gated builds of the workload (guests/tests/pair_gated.c): before its last line the guest
 * waits for a byte on the console, so a test that kills a replica at line K of the guest's
 * output can never find the guest finished first, on however fast or loaded a machine. The
 * console and the image are those of the ungated workload.
 */
interface Workload {
  readonly name: 'full' | 'small';
  readonly elf: string;
  readonly shape: WorkloadShape;
  /** Numbered lines the workload prints: kills are taken at lines 1..numberedLines. */
  readonly numberedLines: number;
}

function workload(name: 'full' | 'small', elf: string, shape: WorkloadShape): Workload {
  return { name, elf: guestElf(elf), shape, numberedLines: expectedConsole(shape).match(/^line \d{4} /gm)?.length ?? 0 };
}

const workloads: Record<'full' | 'small', Workload> = {
  full: workload('full', 'pair_gated', fullShape),
  small: workload('small', 'pair_small_gated', smallShape),
};

interface Trial {
  readonly workload: Workload;
  readonly variant: string;
  readonly options: readonly string[];
  /** The replica is killed when the console shows this numbered line. */
  readonly killAtLine: number;
}

/** Runs `pair` on a fresh blank image, console input from `body`; returns the result and the image's path. */
async function runPair(workload: Workload, options: readonly string[], body: (pair: CliProcess) => Promise<void>) {
  const directory = scratchDirectory('pair');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, workload.shape);
  const args = ['pair', '--kernel', workload.elf, '--disk', image, '--arbiter', path.join(directory, 'arbiter'), ...options];
  const pair = new CliProcess(args, { input: 'pipe', timeoutMs: runTimeoutMs });
  try {
    await body(pair);
    const result = await pair.done;
    return { result, image, directory, replay: `node bin/understudy.js ${args.join(' ')}` };
  } finally {
    pair.killGroup();
  }
}

/** Lets a gated workload print its last line and finish. */
function openGate(pair: CliProcess): void {
  pair.child.stdin!.end('g');
}

function cleanUp(directory: string): void {
  fs.rmSync(directory, { recursive: true, force: true });
}

/** The console has shown numbered line `line` (so the live replica's guest got at least that far). */
function lineShown(pair: CliProcess, line: number): Promise<unknown> {
  return pair.waitFor('stdout', new RegExp(`^line ${String(line).padStart(4, '0')} `, 'm'), runTimeoutMs);
}

/** SIGKILL to one of the pair's replicas, as a host failure would end it. */
function killReplica(pair: CliProcess, name: 'primary' | 'backup'): number {
  const pid = pairReplicaPid(pair.child.pid!, name);
  assert.ok(pid !== undefined, `the pair has a ${name} process\n${pair.tail()}`);
  process.kill(pid, 'SIGKILL');
  return pid;
}

// -------------------------------------------------------------------------------------------
// a. no failure

test('pair, no failure: exit 0, exactly the console and the image of one machine', { timeout: testTimeoutMs }, async () => {
  const { result, image, directory } = await runPair(workloads.full, [], async (pair) => {
    await lineShown(pair, workloads.full.numberedLines);
    openGate(pair);
  });
  try {
    assert.equal(result.status, 0, describeResult(result));
    assert.ok(result.stdout === expectedConsole(), `console differs at ${firstDifference(result.stdout, expectedConsole())}`);
    assert.equal(result.stderr, '', 'a failure-free pair says nothing on stderr');
    assertImage(image, expectedDiskImage());
  } finally {
    cleanUp(directory);
  }
});

test('pair --reads-in-log (reads carried in the log, not read by the backup): the same console and image', { timeout: testTimeoutMs }, async () => {
  const { result, image, directory } = await runPair(workloads.full, ['--reads-in-log'], async (pair) => {
    await lineShown(pair, workloads.full.numberedLines);
    openGate(pair);
  });
  try {
    assert.equal(result.status, 0, describeResult(result));
    assert.ok(result.stdout === expectedConsole(), `console differs at ${firstDifference(result.stdout, expectedConsole())}`);
    assertImage(image, expectedDiskImage());
  } finally {
    cleanUp(directory);
  }
});

// -------------------------------------------------------------------------------------------
// b. the primary dies

const seed = Number(process.env['UNDERSTUDY_PAIR_SEED'] ?? 1995);

/**
 * The primary-kill trials: mostly the defaults, some of each variant, most on the full
 * workload. Kill moments are spread evenly over each workload's numbered lines (one random
 * line in each of as many equal slices as there are trials), in a seeded random order.
 */
function primaryTrials(): Trial[] {
  const prng = new Prng(seed);
  const plan: { workload: Workload; variant: string; options: string[] }[] = [];
  const add = (count: number, workload: Workload, variant: string, options: string[]): void => {
    for (let i = 0; i < count; i++) plan.push({ workload, variant, options });
  };
  add(8, workloads.full, 'defaults', []);
  add(4, workloads.small, 'defaults', []);
  add(3, workloads.full, 'original protocol', ['--protocol', 'original']);
  add(3, workloads.full, 'uncertain pending I/O', ['--pending-io', 'uncertain']);
  add(1, workloads.small, 'original protocol, uncertain pending I/O', ['--protocol', 'original', '--pending-io', 'uncertain']);
  add(2, workloads.full, 'small epochs', ['--epoch', '20000']);
  add(2, workloads.full, 'large epochs', ['--epoch', '1000000']);
  return spreadKills(prng, plan);
}

function spreadKills(prng: Prng, plan: readonly { workload: Workload; variant: string; options: string[] }[]): Trial[] {
  const slices = plan.map((_, index) => index);
  for (let i = slices.length - 1; i > 0; i--) {
    const j = prng.int(0, i);
    [slices[i], slices[j]] = [slices[j]!, slices[i]!];
  }
  return plan.map(({ workload, variant, options }, index) => {
    const killAtLine = 1 + Math.floor(((workload.numberedLines - 1) * (slices[index]! + prng.float())) / plan.length);
    return { workload, variant, options, killAtLine };
  });
}

const trials = primaryTrials();
const failovers: { trial: Trial; line: FailoverLine }[] = [];

console.log(
  `pair.test: seed ${seed}; the primary is killed when the console shows line:\n` +
    trials.map((trial, index) => `  ${String(index + 1).padStart(2)}. ${trial.killAtLine} of ${trial.workload.numberedLines}, ${trial.workload.name} workload, ${trial.variant}`).join('\n'),
);

/**
 * Runs a trial: `pair`, the victim killed with SIGKILL when the console shows the trial's
 * line; once the other replica runs alone (the backup has gone live, or the primary has lost
 * its backup), the gate opens and the guest finishes.
 */
async function runWithKill(trial: Trial, victim: 'primary' | 'backup') {
  let pid = 0;
  const run = await runPair(trial.workload, trial.options, async (pair) => {
    await lineShown(pair, trial.killAtLine);
    pid = killReplica(pair, victim);
    if (victim === 'primary') await pair.waitFor('stderr', /the backup went live/, runTimeoutMs);
    openGate(pair);
  });
  return { ...run, context: `\nreplay: ${run.replay} (kill the ${victim}, pid ${pid}, at line ${trial.killAtLine})\n${describeResult(run.result)}` };
}

for (const [index, trial] of trials.entries()) {
  const name = `kill the primary at line ${trial.killAtLine} of ${trial.workload.numberedLines} (${trial.workload.name} workload, ${trial.variant}): the backup takes over`;
  test(`trial ${index + 1}: ${name}`, { timeout: testTimeoutMs }, async (t) => {
    const { result, image, directory, context } = await runWithKill(trial, 'primary');
    try {
      assert.equal(result.status, 0, context);
      const lines = failoverLines(result.stderr);
      assert.equal(lines.length, 1, `one failover${context}`);
      failovers.push({ trial, line: lines[0]! });
      t.diagnostic(`went live after ${lines[0]!.liveAfterMs} ms (${lines[0]!.reason})`);
      const check = checkConsoleWithRepeats(result.stdout, { shape: trial.workload.shape });
      assert.ok(check.ok, `console: ${check.reason}${context}`);
      assertImage(image, expectedDiskImage(trial.workload.shape), context);
    } finally {
      cleanUp(directory);
    }
  });
}

test('failover times of the primary-kill trials', (t) => {
  if (failovers.length === 0) {
    t.skip('no primary-kill trial got as far as its failover');
    return;
  }
  const live = failovers.map((entry) => entry.line.liveAfterMs);
  t.diagnostic(
    `went live after (ms): ${failovers.map((entry) => `${entry.trial.killAtLine}->${entry.line.liveAfterMs}`).join(' ')}; ` +
      `min ${Math.min(...live)}, median ${median(live)}, max ${Math.max(...live)}`,
  );
  console.log(`pair.test: failover times (kill line -> live after, ms): ${failovers.map((entry) => `${entry.trial.killAtLine}->${entry.line.liveAfterMs}`).join(', ')}`);
  // A killed process closes its socket: the backup notices at once, and pair, which saw its
  // child exit, tells it that no lease need run out; seconds would mean it waited for a timeout.
  for (const { trial, line } of failovers) assert.ok(line.liveAfterMs < 2000, `trial at line ${trial.killAtLine} took ${line.liveAfterMs} ms to go live`);
  for (const { trial, line } of failovers) assert.ok(line.primaryExited, `trial at line ${trial.killAtLine}: the backup did not hear that the primary's process had ended`);
});

// -------------------------------------------------------------------------------------------
// c. the backup dies

const backupTrials = spreadKills(new Prng(seed + 1), [
  { workload: workloads.full, variant: 'defaults', options: [] },
  { workload: workloads.full, variant: 'defaults', options: [] },
  { workload: workloads.full, variant: 'original protocol', options: ['--protocol', 'original'] },
  { workload: workloads.full, variant: 'small epochs', options: ['--epoch', '20000'] },
  { workload: workloads.small, variant: 'defaults', options: [] },
]);
console.log(`pair.test: the backup is killed at line: ${backupTrials.map((trial) => `${trial.killAtLine} (${trial.workload.name}, ${trial.variant})`).join(', ')}`);

for (const trial of backupTrials) {
  test(`kill the backup at line ${trial.killAtLine} of ${trial.workload.numberedLines} (${trial.workload.name} workload, ${trial.variant}): the primary finishes alone`, { timeout: testTimeoutMs }, async () => {
    const { result, image, directory, context } = await runWithKill(trial, 'backup');
    try {
      assert.equal(result.status, 0, context);
      assert.doesNotMatch(result.stderr, /went live/, context);
      // The primary never re-executes anything: no repeats at all.
      const expected = expectedConsole(trial.workload.shape);
      assert.ok(result.stdout === expected, `console differs at ${firstDifference(result.stdout, expected)}${context}`);
      assertImage(image, expectedDiskImage(trial.workload.shape), context);
    } finally {
      cleanUp(directory);
    }
  });
}

// -------------------------------------------------------------------------------------------
// The kill options of `pair`: --kill-primary-after and --kill-backup-after kill that long
// after the backup joined (the gated guest waits, so the kill always comes first).

for (const victim of ['primary', 'backup'] as const) {
  test(`pair --kill-${victim}-after: the ${victim} is killed with SIGKILL and the run completes`, { timeout: testTimeoutMs }, async () => {
    const { result, image, directory, replay } = await runPair(workloads.full, [`--kill-${victim}-after`, '300'], async (pair) => {
      await pair.waitFor('stderr', new RegExp(`killing the ${victim} \\(pid \\d+\\) with SIGKILL`), runTimeoutMs);
      if (victim === 'primary') await pair.waitFor('stderr', /the backup went live/, runTimeoutMs);
      openGate(pair);
    });
    const context = `\nreplay: ${replay}\n${describeResult(result)}`;
    try {
      assert.equal(result.status, 0, context);
      if (victim === 'primary') {
        const lines = failoverLines(result.stderr);
        assert.equal(lines.length, 1, context);
        assert.ok(lines[0]!.sinceKillMs !== undefined, `the failover line counts from the kill${context}`);
        assert.ok(checkConsoleWithRepeats(result.stdout).ok, context);
      } else {
        assert.ok(result.stdout === expectedConsole(), context);
      }
      assertImage(image, expectedDiskImage(), context);
    } finally {
      cleanUp(directory);
    }
  });
}

// -------------------------------------------------------------------------------------------
// d. the status view

interface StatusPoll {
  readonly atMs: number;
  readonly text: string;
}

/**
 * `understudy status --port P` as a user runs it, back to back until the pair is done; every
 * third view with --json. After each view, `afterView` sees all views so far.
 */
async function pollStatus(port: number, pair: CliProcess, afterView: (human: readonly StatusPoll[], json: readonly StatusPoll[]) => void): Promise<{ human: StatusPoll[]; json: StatusPoll[] }> {
  const human: StatusPoll[] = [];
  const json: StatusPoll[] = [];
  const started = performance.now();
  for (let count = 0; !pair.exited; count++) {
    const asJson = count % 3 === 2;
    const result = await runCli(['status', '--port', String(port), ...(asJson ? ['--json'] : [])], 10_000);
    if (result.status === 0) (asJson ? json : human).push({ atMs: performance.now() - started, text: result.stdout });
    else assert.match(result.stderr, /^understudy: no status at 127\.0\.0\.1:\d+: .*ECONNREFUSED/, describeResult(result));
    afterView(human, json);
  }
  return { human, json };
}

interface ReplicaLine {
  readonly pid: number;
  readonly exited: boolean;
  readonly role: string;
  readonly epoch: number;
  readonly lag: number;
  readonly lagMs: number;
  readonly logKiBPerSecond: number;
  readonly generation: number;
}

/** One replica's line of the human status view. */
function replicaLine(text: string, name: 'primary' | 'backup'): ReplicaLine | undefined {
  const pattern = new RegExp(
    `^${name} +pid (\\d+): (exited \\(last report: )?(\\w+), epoch (\\d+), lag (-?\\d+) epochs \\((\\d+) ms\\), log ([\\d.]+) KiB/s, outputs waiting (\\d+), generation (\\d+)\\)?$`,
    'm',
  );
  const match = pattern.exec(text);
  if (match === null) return undefined;
  return {
    pid: Number(match[1]),
    exited: match[2] !== undefined,
    role: match[3]!,
    epoch: Number(match[4]),
    lag: Number(match[5]),
    lagMs: Number(match[6]),
    logKiBPerSecond: Number(match[7]),
    generation: Number(match[9]),
  };
}

/** A view of the protected pair: a primary and a backup, no failover yet. */
function protectedView(text: string): { primary: ReplicaLine; backup: ReplicaLine } | undefined {
  const primary = replicaLine(text, 'primary');
  const backup = replicaLine(text, 'backup');
  const both = primary !== undefined && backup !== undefined && !primary.exited && primary.role === 'primary' && backup.role === 'backup';
  return both && /^Protected$/m.test(text) && /no failover so far/.test(text) ? { primary, backup } : undefined;
}

/** A view after the failover: the old backup is the primary, protected by a new backup. */
function reprotectedView(text: string, killed: { primaryPid: number; backupPid: number }): { text: string; primary: ReplicaLine; backup: ReplicaLine } | undefined {
  const primary = replicaLine(text, 'primary');
  const backup = replicaLine(text, 'backup');
  if (primary === undefined || backup === undefined || !/^Protected$/m.test(text) || !/^failover: /m.test(text)) return undefined;
  if (primary.pid !== killed.backupPid || primary.role !== 'primary' || backup.role !== 'backup' || backup.pid === killed.primaryPid) return undefined;
  return { text, primary, backup };
}

/**
 * The live machine's epochs, view by view: the primary's (the view always shows the live
 * replica as the primary). Not strictly increasing: the new primary starts after the last
 * epoch the backup received, which may be a little before the last one the old primary
 * reported.
 */
function liveEpochs(views: readonly StatusPoll[]): number[] {
  return views.flatMap((poll) => {
    const primary = replicaLine(poll.text, 'primary');
    return primary !== undefined && !primary.exited ? [primary.epoch] : [];
  });
}

test('status view: `understudy status` shows protection, roles, epochs advancing, the log rate, the failover, then protection again', { timeout: testTimeoutMs }, async () => {
  const port = await freePort();
  let human: StatusPoll[] = [];
  let json: StatusPoll[] = [];
  // The test kills the primary itself once the views have shown the protected pair (in both
  // forms), and lets the gated guest finish once they have shown the promoted backup protected
  // again by a new one: every view it needs comes before the end, however slowly they come.
  let killed: { primaryPid: number; backupPid: number } | undefined;
  let gateOpen = false;
  const { result, image, directory, replay } = await runPair(workloads.full, ['--status-port', String(port)], async (pair) => {
    ({ human, json } = await pollStatus(port, pair, (humanViews, jsonViews) => {
      if (killed === undefined) {
        const view = humanViews.map((poll) => protectedView(poll.text)).find((found) => found !== undefined);
        const jsonPrimary = jsonViews.some((poll) => (JSON.parse(poll.text) as { primary?: { role?: string } }).primary?.role === 'primary');
        if (view === undefined || !jsonPrimary || humanViews.length < 2) return;
        killed = { primaryPid: view.primary.pid, backupPid: view.backup.pid };
        process.kill(view.primary.pid, 'SIGKILL');
      } else if (!gateOpen) {
        const reprotected = humanViews.some((poll) => reprotectedView(poll.text, killed!) !== undefined);
        const jsonAfter = jsonViews.some((poll) => (JSON.parse(poll.text) as { failover?: unknown }).failover != null);
        if (!reprotected || !jsonAfter) return;
        gateOpen = true;
        openGate(pair);
      }
    }));
  });
  const context = `\nreplay: ${replay}\n${describeResult(result)}\n--- status polls\n${human.map((poll) => `@${poll.atMs.toFixed(0)} ms\n${poll.text}`).join('')}`;
  try {
    assert.equal(result.status, 0, context);
    assert.ok(checkConsoleWithRepeats(result.stdout).ok, context);
    assertImage(image, expectedDiskImage(), context);
    assert.ok(killed !== undefined, context);
    const { primaryPid, backupPid } = killed;

    // Every view says whether the VM is protected, names the primary and the backup (or says
    // there is no report yet), and the failover.
    for (const poll of human) {
      assert.match(poll.text, /^(Protected|Not protected: .+)\n/, `protection first${context}`);
      assert.match(poll.text, /^primary\b/m, `a line for the primary${context}`);
      assert.match(poll.text, /^backup\b/m, `a line for the backup${context}`);
      assert.match(poll.text, /^(no failover so far|failover: .*)$/m, context);
    }

    // Before the kill: a primary and a backup, in generation 1, with a log flowing. (The
    // pair's view holds each replica's latest report, taken at different moments: the backup
    // may look ahead of the primary.)
    const protectedViews = human.flatMap((poll) => protectedView(poll.text) ?? []);
    assert.ok(protectedViews.length >= 1, `a view of the protected pair${context}`);
    for (const { primary, backup } of protectedViews) {
      assert.equal(primary.generation, 1, context);
      assert.equal(backup.generation, 1, context);
      assert.notEqual(primary.pid, backup.pid, context);
      assert.ok(primary.lag >= 0 && backup.lag >= 0 && primary.lagMs >= 0 && backup.lagMs >= 0, context);
    }
    assert.ok(
      protectedViews.some((view) => view.primary.logKiBPerSecond > 0 || view.backup.logKiBPerSecond > 0),
      `a non-zero log rate while the pair runs${context}`,
    );

    // After the kill: the old backup is the primary, in generation 2, and the view says when
    // the failover happened and how long it took; then a new backup protects it again.
    const again = human.map((poll) => reprotectedView(poll.text, killed!)).filter((view) => view !== undefined);
    assert.ok(again.length >= 1, `a view protected again after the failover${context}`);
    const { text: last, primary: promoted, backup: newBackup } = again[again.length - 1]!;
    assert.equal(promoted.pid, backupPid, `the old backup is the primary${context}`);
    assert.notEqual(newBackup.pid, primaryPid, context);
    assert.equal(promoted.generation, 2, context);
    assert.match(last, /^ +last failover: live \d+ ms after the primary was declared failed \(it had been silent \d+ ms\)$/m, context);
    const failover = /^failover: (.+); the backup was live (\d+) ms later, from epoch (\d+) \((\d+) disk request\(s\) settled, (\d+) console byte\(s\) repeated\), ([\d.]+ (?:ms|s|min \d+ s)) ago$/m.exec(last);
    assert.ok(failover !== null, context);
    assert.match(failover[1]!, /connection closed|nothing heard/, context);
    const stderrLine = failoverLines(result.stderr)[0];
    assert.ok(stderrLine !== undefined, context);
    assert.equal(Number(failover[2]), stderrLine.liveAfterMs, `the view and the log agree on how long it took${context}`);
    assert.match(result.stderr, /understudy: protected again: a new backup \(pid \d+\) has joined/, context);
    // The live machine's epochs advance across the failover.
    const live = liveEpochs(human);
    assert.ok(live.length >= 2 && live[live.length - 1]! > live[0]!, `the epochs advance (${live.join(', ')})${context}`);

    // --json: the same data, as JSON.
    assert.ok(json.length >= 2, context);
    for (const poll of json) {
      const parsed = JSON.parse(poll.text) as Record<string, unknown>;
      assert.equal(typeof parsed['protected'], 'boolean', poll.text);
      for (const key of ['primary', 'backup']) {
        const replica = parsed[key] as Record<string, unknown> | null | undefined;
        if (replica === null || replica === undefined) continue;
        for (const field of ['pid', 'epoch', 'lagEpochs', 'lagMs', 'logBytesPerSecond', 'outputsWaiting', 'generation']) {
          assert.equal(typeof replica[field], 'number', `${key}.${field} in ${poll.text}`);
        }
        assert.equal(typeof replica['role'], 'string', poll.text);
      }
    }
    const afterJson = json.map((poll) => JSON.parse(poll.text) as { failover?: { liveAtMs: number; detectedAtMs: number } | null; primary?: { lastFailover?: { tookMs: number } } }).filter((view) => view.failover != null);
    assert.ok(afterJson.length >= 1, context);
    for (const view of afterJson) assert.ok(view.failover!.liveAtMs >= view.failover!.detectedAtMs, context);
    for (const poll of json) {
      const view = JSON.parse(poll.text) as { failover?: unknown; sinceFailoverMs?: unknown };
      assert.equal(typeof view.sinceFailoverMs, view.failover == null ? 'object' : 'number', `the time since the failover, once there was one: ${poll.text}`);
    }
    assert.ok(json.some((poll) => (JSON.parse(poll.text) as { primary?: { role?: string } }).primary?.role === 'primary'), `a JSON view of the running primary${context}`);
  } finally {
    cleanUp(directory);
  }
});
