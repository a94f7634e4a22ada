/**
 * Unit tests of test/support/pair-workload.ts: the disk and console contracts of
 * guests/tests/pair_workload.c, and above all the checker of console output with repeats,
 * against hand-made cases, against every split of a small output, and against a brute-force
 * reading of its definition on seeded random inputs (a failing seed is printed and replays).
 */
import { suite, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  checkConsoleWithRepeats,
  checkOutputWithRepeats,
  consoleRewindBytesMax,
  createBlankDiskImage,
  diskBytes,
  expectedConsole,
  expectedDiskImage,
  expectedSleeps,
  expectedWord,
  finalRound,
  repeatCheckInternals,
  sectorBytes,
  consoleRewindsMax,
  type RepeatCheckOptions,
} from './pair-workload.js';

function accepts(expected: string, observed: string, options: RepeatCheckOptions = {}): void {
  const result = checkOutputWithRepeats(expected, observed, options);
  assert.deepEqual(result, { ok: true }, `${JSON.stringify(observed)} should pass as ${JSON.stringify(expected)}`);
}

function rejects(expected: string, observed: string, reason: RegExp, options: RepeatCheckOptions = {}): void {
  const result = checkOutputWithRepeats(expected, observed, options);
  assert.equal(result.ok, false, `${JSON.stringify(observed)} should not pass as ${JSON.stringify(expected)}`);
  assert.match(result.reason ?? '', reason);
}

/** A seeded generator (xorshift32): the same seed gives the same cases. */
function random(seed: number): (limit: number) => number {
  let state = seed >>> 0 || 1;
  return (limit) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % limit;
  };
}

/**
 * The definition read literally: observed = expected[0, a_1) + expected[b_1, a_2) + ... +
 * expected[b_k, n), k <= rewindsMax, every segment non-empty, b_i < a_i,
 * b_i >= max(a_1..a_i) - rewindBytesMax. Tries every split (memoized); only for tiny strings.
 */
function referenceCheck(expected: string, observed: string, rewindBytesMax: number, rewindsMax: number): boolean {
  const n = expected.length;
  if (n === 0) return observed.length === 0;
  const failed = new Set<string>();
  // A segment starts at expected offset `start` and observed offset `at`, `furthest` printed before it.
  const fits = (at: number, start: number, furthest: number, rewindsLeft: number): boolean => {
    const key = `${at},${start},${furthest},${rewindsLeft}`;
    if (failed.has(key)) return false;
    for (let end = start + 1; end <= n && at + end - start <= observed.length; end++) {
      if (observed[at + end - start - 1] !== expected[end - 1]) break;
      const next = at + end - start;
      const reached = Math.max(furthest, end);
      if (next === observed.length && end === n) return true;
      if (rewindsLeft === 0) continue;
      for (let restart = Math.max(0, reached - rewindBytesMax); restart < end; restart++) {
        if (fits(next, restart, reached, rewindsLeft - 1)) return true;
      }
    }
    failed.add(key);
    return false;
  };
  return fits(0, 0, 0, rewindsMax);
}

/** Checks the combined check, the automaton alone and the greedy search (which may only give up) against the definition. */
function compareWithDefinition(expected: string, observed: string, options: { maxRewindBytes: number; maxRewinds: number }, what: string): void {
  const want = referenceCheck(expected, observed, options.maxRewindBytes, options.maxRewinds);
  const label = `${what}: ${JSON.stringify(observed)} as ${JSON.stringify(expected)}, ${JSON.stringify(options)}`;
  assert.equal(checkOutputWithRepeats(expected, observed, options).ok, want, label);
  assert.equal(repeatCheckInternals.runAutomaton(expected, observed, options.maxRewindBytes, options.maxRewinds).ok, want, `automaton, ${label}`);
  if (repeatCheckInternals.greedyFindsSplit(expected, observed, options.maxRewindBytes, options.maxRewinds)) assert.ok(want, `greedy, ${label}`);
}

/** `expected` printed with rewinds at the given (from, to) points, in order. */
function withRewinds(expected: string, rewinds: readonly (readonly [number, number])[]): string {
  let observed = '';
  let at = 0;
  for (const [from, to] of rewinds) {
    assert.ok(to < from && from >= at, `bad rewind ${from} -> ${to}`);
    observed += expected.slice(at, from);
    at = to;
  }
  return observed + expected.slice(at);
}

suite('checkOutputWithRepeats: hand-made cases', () => {
  const e = 'ABCDEF';

  test('no repeat', () => {
    accepts(e, e);
    accepts('', '');
  });

  test('one repeat, anywhere', () => {
    accepts(e, 'ABCDCDEF');
    accepts(e, 'AABCDEF'); // from 1 back to 0
    accepts(e, 'ABCDEFF'); // after the last byte, the last byte again
    accepts(e, 'ABCDEFABCDEF'); // the whole output again
    accepts(e, 'ABCDEFEF');
    accepts(e, 'ABCDEBCDEF');
  });

  test('two repeats, one after the other or one inside the other', () => {
    accepts(e, 'ABCBCDEDEF');
    accepts(e, 'ABCDEBCDCDEF'); // 5 -> 1, then 4 -> 2, inside the repeated part
    accepts(e, 'ABCABCABCDEF');
    accepts(e, 'ABABCDEFCDEF');
  });

  test('truncated output fails, also inside a repeat after the complete output', () => {
    rejects(e, 'ABCD', /ends after 4 bytes.*first 4 of 6 bytes; missing "EF"/);
    rejects(e, '', /ends after 0 bytes/);
    rejects(e, 'ABCDCD', /missing "EF"/);
    rejects(e, 'ABCDEFABC', /ends inside a repeat.*expected offset 3; missing "DEF"/);
    rejects('', 'A', /goes wrong/);
  });

  test('garbage fails: a byte never expected there, before, inside or after', () => {
    rejects(e, 'XABCDEF', /goes wrong after the expected output's first 0 of 6 bytes/);
    rejects(e, 'ABXCDEF', /first 2 of 6 bytes.*"XCDEF".*"CDEF"/);
    rejects(e, 'ABCDEFX', /first 6 of 6 bytes/);
    rejects(e, 'ABCDCXEF', /goes wrong/);
    rejects(e, 'FEDCBA', /goes wrong/);
  });

  test('missing bytes fail, also when the output is long enough', () => {
    rejects(e, 'ABDEF', /goes wrong after the expected output's first 2 of 6 bytes/);
    rejects(e, 'BCDEF', /first 0 of 6/);
    rejects(e, 'ABCDCEF', /goes wrong/); // D missing after the repeat
    rejects(e, 'ABCDEABCDE', /missing "F"|goes wrong/);
    rejects(e, 'ABCEFABCDEF', /goes wrong/); // D missing the first time round: no skip forward
  });

  test('a restart at most maxRewindBytes before the furthest byte printed', () => {
    const digits = '0123456789';
    accepts(digits, withRewinds(digits, [[7, 4]]), { maxRewindBytes: 3 });
    rejects(digits, withRewinds(digits, [[7, 3]]), /at most 3 bytes back/, { maxRewindBytes: 3 });
    accepts(digits, withRewinds(digits, [[7, 3]]), { maxRewindBytes: 4 });
    // The bound counts from the furthest point printed (6), not from where the second rewind happens (5).
    const twice = withRewinds(digits, [[6, 3], [5, 2]]);
    rejects(digits, twice, /goes wrong/, { maxRewindBytes: 3 });
    accepts(digits, twice, { maxRewindBytes: 4 });
    // With no rewind allowed only the expected output itself passes.
    accepts(digits, digits, { maxRewindBytes: 0 });
    rejects(digits, withRewinds(digits, [[5, 4]]), /goes wrong/, { maxRewindBytes: 0 });
  });

  test('at most maxRewinds rewinds', () => {
    const digits = '0123456789';
    const three = withRewinds(digits, [[4, 2], [6, 5], [9, 1]]);
    accepts(digits, three, { maxRewinds: 3 });
    rejects(digits, three, /in at most 2 rewinds/, { maxRewinds: 2 });
    accepts(digits, digits, { maxRewinds: 0 });
    rejects(digits, withRewinds(digits, [[5, 4]]), /in at most 0 rewinds/, { maxRewinds: 0 });
  });

  test('the default bounds', () => {
    const long = Array.from({ length: 1000 }, (_, i) => `line ${String(i).padStart(4, '0')}\n`).join('');
    const from = 8000;
    const exact = { maxRewinds: 1 };
    accepts(long, withRewinds(long, [[from, from - consoleRewindBytesMax]]), exact);
    rejects(long, withRewinds(long, [[from, from - consoleRewindBytesMax - 1]]), /goes wrong/, exact);
    // With more rewinds allowed, the first bytes of a restart from just before the window may be
    // printed from pieces inside it (short segments, then a rewind to the window's start): in
    // text this repetitive up to about 20 bytes with 4 rewinds, but not several lines.
    accepts(long, withRewinds(long, [[from, from - consoleRewindBytesMax - 1]]));
    rejects(long, withRewinds(long, [[from, from - consoleRewindBytesMax - 100]]), /goes wrong/);
    const rewinds = Array.from({ length: consoleRewindsMax + 1 }, (_, i): [number, number] => [1000 * (i + 1) + 1, 1000 * (i + 1)]);
    accepts(long, withRewinds(long, rewinds.slice(0, consoleRewindsMax)));
    rejects(long, withRewinds(long, rewinds), /goes wrong/);
  });

  test('a bad bound is a caller error', () => {
    assert.throws(() => checkOutputWithRepeats(e, e, { maxRewindBytes: -1 }), RangeError);
    assert.throws(() => checkOutputWithRepeats(e, e, { maxRewindBytes: 1.5 }), RangeError);
  });
});

suite('checkOutputWithRepeats: every split of a small output', () => {
  const e = 'line 1\nline 2\nline 3\n';
  const n = e.length;

  test('every rewind from any point to any earlier point passes', () => {
    for (let from = 1; from <= n; from++) {
      for (let to = 0; to < from; to++) accepts(e, withRewinds(e, [[from, to]]));
    }
  });

  test('every pair of rewinds passes', () => {
    for (let from = 1; from <= n; from++) {
      for (const to of new Set([0, from >> 1, from - 1])) {
        for (let second = to + 1; second <= n; second++) {
          for (const secondTo of new Set([0, Math.max(0, second - 5), second - 1])) accepts(e, withRewinds(e, [[from, to], [second, secondTo]]));
        }
      }
    }
  });

  test('every skip forward, every lost byte, every truncation fails', () => {
    for (let from = 0; from < n; from++) {
      for (let to = from + 1; to <= n; to++) rejects(e, e.slice(0, from) + e.slice(to), /goes wrong|ends/);
    }
    for (let length = 0; length < n; length++) rejects(e, e.slice(0, length), /ends after/);
  });

  test('every byte replaced by one the output never holds fails', () => {
    for (let at = 0; at < n; at++) rejects(e, `${e.slice(0, at)}#${e.slice(at + 1)}`, /goes wrong/);
    const repeated = withRewinds(e, [[14, 7]]);
    for (let at = 0; at < repeated.length; at++) rejects(e, `${repeated.slice(0, at)}#${repeated.slice(at + 1)}`, /goes wrong/);
  });
});

suite('checkOutputWithRepeats against the definition, on seeded random cases', () => {
  test('random strings over two letters (every ambiguity there is)', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const next = random(seed);
      const expected = Array.from({ length: 1 + next(6) }, () => 'ab'[next(2)]).join('');
      const observed = Array.from({ length: next(13) }, () => 'ab'[next(2)]).join('');
      compareWithDefinition(expected, observed, { maxRewindBytes: next(expected.length + 2), maxRewinds: next(5) }, `seed ${seed}`);
    }
  });

  test('outputs built with random rewinds, and then damaged', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const next = random(seed * 7919);
      const expected = Array.from({ length: 1 + next(8) }, () => 'abc'[next(3)]).join('');
      const rewindMax = 1 + next(expected.length + 1);
      // Rewinds that respect the bound: from a point at or after the current one, back at most rewindMax from the furthest.
      const rewinds: [number, number][] = [];
      let at = 0;
      let furthest = 0;
      for (let count = next(4); count > 0; count--) {
        const from = at + 1 + next(expected.length - at);
        if (from > expected.length) break;
        furthest = Math.max(furthest, from);
        const lowest = Math.max(0, furthest - rewindMax);
        if (lowest >= from) break;
        const to = lowest + next(from - lowest);
        rewinds.push([from, to]);
        at = to;
      }
      const observed = withRewinds(expected, rewinds);
      const options = { maxRewindBytes: rewindMax, maxRewinds: rewinds.length + next(2) };
      assert.ok(checkOutputWithRepeats(expected, observed, options).ok, `seed ${seed}: ${JSON.stringify(observed)} as ${JSON.stringify(expected)}`);
      assert.ok(repeatCheckInternals.runAutomaton(expected, observed, options.maxRewindBytes, options.maxRewinds).ok, `seed ${seed}: automaton`);
      // One byte changed, dropped or added: compare with the definition (it may still pass).
      const position = next(observed.length + 1);
      const damaged = [
        observed.slice(0, position) + 'abc'[next(3)] + observed.slice(position + 1),
        observed.slice(0, position) + observed.slice(position + 1),
        observed.slice(0, position) + 'abc'[next(3)] + observed.slice(position),
      ];
      for (const variant of damaged) compareWithDefinition(expected, variant, options, `seed ${seed}`);
    }
  });
});

suite('checkConsoleWithRepeats on the workload console', () => {
  const console = expectedConsole();

  test('the failure-free output, and failovers that repeat up to the default bound', () => {
    assert.deepEqual(checkConsoleWithRepeats(console), { ok: true });
    for (let from = 1; from < console.length; from += 997) {
      for (const back of [1, 50, 700, consoleRewindBytesMax]) {
        if (back > from) continue;
        assert.deepEqual(checkConsoleWithRepeats(withRewinds(console, [[from, from - back]])), { ok: true }, `rewind ${from} -> ${from - back}`);
      }
    }
    const twoFailovers = withRewinds(console, [[3000, 2500], [6001, 5000]]);
    assert.deepEqual(checkConsoleWithRepeats(twoFailovers), { ok: true });
  });

  test('a restart from too far back, a lost line, a changed digit or a lost tail fails', () => {
    assert.equal(checkConsoleWithRepeats(withRewinds(console, [[6000, 6000 - consoleRewindBytesMax - 1]]), { maxRewinds: 1 }).ok, false);
    assert.equal(checkConsoleWithRepeats(withRewinds(console, [[6000, 6000 - consoleRewindBytesMax - 100]])).ok, false);
    assert.equal(checkConsoleWithRepeats(withRewinds(console, [[6000, 1000]]), { maxRewindBytes: 5000 }).ok, true);
    const lines = console.split('\n');
    const lost = [...lines.slice(0, 100), ...lines.slice(101)].join('\n');
    const result = checkConsoleWithRepeats(lost);
    assert.equal(result.ok, false);
    // Lines 0101 and 0102 share "line 010"; the reason points just after it.
    assert.match(result.reason ?? '', new RegExp(`goes wrong after the expected output's first ${console.indexOf('line 0101 ') + 8} of`));
    const changed = console.replace('line 0150 ', 'line 0105 ');
    assert.equal(checkConsoleWithRepeats(changed).ok, false);
    assert.equal(checkConsoleWithRepeats(console.slice(0, -1)).ok, false);
    assert.equal(checkConsoleWithRepeats(withRewinds(console, [[4000, 3900]]).slice(0, -10)).ok, false);
  });
});

suite('the workload contracts', () => {
  test('the console: numbered lines without gaps, at least 200, then the PASS line', () => {
    const lines = expectedConsole().split('\n');
    assert.equal(lines.pop(), '', 'the output ends with a newline');
    const verdict = lines.pop();
    lines.forEach((line, index) => assert.ok(line.startsWith(`line ${String(index + 1).padStart(4, '0')} `), line));
    assert.ok(lines.length >= 200, `${lines.length} lines`);
    assert.equal(verdict, `pair_workload: PASS lines=${lines.length} disk=OK`);
    assert.equal(expectedConsole(), expectedConsole());
  });

  test('the sleeps: a fixed number of 1..5 ms each', () => {
    const { count, totalMs } = expectedSleeps();
    assert.ok(count >= 100, `${count} sleeps`);
    assert.ok(totalMs >= count && totalMs <= 5 * count);
    assert.match(expectedConsole(), new RegExp(`timer: ${count} sleeps`));
  });

  test('the final rounds, as pair_workload.c documents them', () => {
    const rounds = new Map([[0, 3], [1, 1], [3, 2], [7, 3], [21, 3], [510, 2], [511, 3], [512, 2], [515, 4], [1534, 2], [1535, 4], [1536, 0], [2046, 0], [2047, 5]]);
    for (const [sector, round] of rounds) assert.equal(finalRound(sector), round, `sector ${sector}`);
  });

  test('the image: 1 MiB of records and zeros; words pinned from a run of the guest', () => {
    const image = expectedDiskImage();
    assert.equal(image.length, diskBytes);
    const view = new DataView(image.buffer);
    const word = (sector: number, k: number): number => view.getUint32(sector * sectorBytes + k * 4, true);
    assert.equal(word(1, 0), 0x52494150);
    assert.equal(word(1, 1), 1);
    assert.equal(word(1, 2), 1);
    assert.equal(word(1, 3), 0x69139253);
    assert.equal(word(0, 127), 0x87508a6a);
    assert.equal(word(600, 5), 0xe6759312);
    assert.equal(word(2047, 64), 0x713471fe);
    assert.equal(word(2047, 64), expectedWord(2047, 5, 64));
    assert.ok(image.subarray(1536 * sectorBytes, 2047 * sectorBytes).every((byte) => byte === 0));
  });

  test('createBlankDiskImage writes 1 MiB of zeros', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-'));
    try {
      const file = path.join(directory, 'blank.img');
      createBlankDiskImage(file);
      const bytes = fs.readFileSync(file);
      assert.equal(bytes.length, diskBytes);
      assert.ok(bytes.every((byte) => byte === 0));
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });
});
