/**
 * The console on a real terminal (a pseudo-terminal from util-linux's `script`), as a person
 * uses it: raw mode, so that Enter arrives as a carriage return and Ctrl-C goes to the guest
 * instead of stopping understudy; a full-screen editor (BusyBox vi) works; Ctrl-A x quits; in
 * `pair`, Ctrl-A k kills the primary and typing goes on into the new primary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConsoleSession, shellPrompt } from './support/console-session.js';
import { guestElf } from './helpers.js';
import { freePort } from './support/replica-processes.js';
import { createBlankDiskImage, smallShape } from './support/pair-workload.js';

const bootTimeoutMs = 120_000;

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-tty-'));
}

/**
 * Types a line as a terminal sends it (Enter is CR) and waits for its output and the next
 * prompt. (Lines end in CR CR LF on the terminal: the guest sends CR LF, and the terminal's
 * output processing, which libuv's raw mode leaves on, turns LF into CR LF.)
 */
async function typeLine(session: ConsoleSession, line: string, expected: string | RegExp): Promise<void> {
  const start = session.text.length;
  session.type(`${line}\r`);
  const end = await session.waitFor(expected, 30_000, start);
  await session.waitFor(shellPrompt, 30_000, end);
}

/**
 * Linux booted to its shell by `understudy ARGS --disk <fresh image>` on a terminal; runs
 * `body`, then quits with Ctrl-A x, which must end the process with status 0.
 */
async function withShellOnTerminal(args: readonly string[], body: (session: ConsoleSession) => Promise<void>): Promise<void> {
  const dir = scratch();
  const session = new ConsoleSession([...args, '--guest', 'linux', '--disk', path.join(dir, 'data.img')], { terminal: true });
  try {
    const mounted = await session.waitFor('understudy: /data mounted', bootTimeoutMs);
    await session.waitFor(shellPrompt, 30_000, mounted);
    await body(session);
    session.type('\x01x');
    assert.equal(await session.exit(30_000), 0, session.tail());
    assert.match(session.text, /understudy: quit/);
  } finally {
    session.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('run on a terminal: typing, Ctrl-C goes to the guest, Ctrl-A x quits', { timeout: 240_000 }, async () => {
  await withShellOnTerminal(['run', '--timeout', '200'], async (session) => {
    await typeLine(session, 'echo typed on a terminal', /\ntyped on a terminal\r+\n/);
    // Ctrl-C is a byte for the guest's terminal, not a signal for understudy.
    session.type('\x03');
    await typeLine(session, 'echo still here after ctrl-c', /\nstill here after ctrl-c\r+\n/);
    assert.equal(session.process.exitCode, null);
  });
});

test('vi on the terminal: insert a line, save with :wq, and the file holds it', { timeout: 240_000 }, async () => {
  await withShellOnTerminal(['run', '--timeout', '200'], async (session) => {
    const start = session.text.length;
    session.type('vi /data/note.txt\r');
    // vi draws its screen: '~' marks the lines past the end of the (new, empty) file.
    const drawn = await session.waitFor('~', 30_000, start);
    // Insert mode, a line, then Escape with the ':' after it. vi takes Escape followed by more
    // than one byte within 50 ms for an unknown key sequence and drops it all, so ':' comes in
    // the same write and the rest only after vi has drawn the ':' prompt.
    session.type('iwritten in vi\x1b:');
    await session.waitFor(':', 30_000, drawn);
    session.type('wq\r');
    await session.waitFor(shellPrompt, 30_000, drawn);
    await typeLine(session, 'cat /data/note.txt', /\nwritten in vi\r+\n/);
  });
});

test('pair on a terminal: Ctrl-A k kills the primary, typing goes on into the backup, Ctrl-A x quits', { timeout: 240_000 }, async () => {
  await withShellOnTerminal(['pair'], async (session) => {
    await typeLine(session, 'echo typed into the primary', /\ntyped into the primary\r+\n/);
    await typeLine(session, 'echo kept across the failover > /data/tty.txt', '');
    session.type('\x01k');
    const live = await session.waitFor(/the backup went live[^\n]*\n/, 30_000);
    // The first command after the failover: its own output, whatever the failover repeated.
    session.type('echo typed into the backup\r');
    const echoed = await session.waitFor(/\ntyped into the backup\r+\n/, 30_000, live);
    await session.waitFor(shellPrompt, 30_000, echoed);
    await typeLine(session, 'cat /data/tty.txt', /\nkept across the failover\r+\n/);
  });
});

test('a standalone primary on a terminal: Ctrl-A x stops it, and its backup carries the guest to the end', { timeout: 120_000 }, async () => {
  const dir = scratch();
  const port = await freePort();
  // The gated workload waits for a byte on the console before its last line, so the guest can
  // never finish before the keystroke takes effect, however loaded the machine.
  const image = path.join(dir, 'disk.img');
  createBlankDiskImage(image, smallShape);
  const common = ['--kernel', guestElf('pair_small_gated'), '--disk', image, '--arbiter', path.join(dir, 'arbiter'), '--verbose', '--insecure'];
  const primary = new ConsoleSession(['primary', '--listen', `127.0.0.1:${port}`, '--wait-for-backup', ...common], { terminal: true });
  let backup: ConsoleSession | undefined;
  try {
    // (On the terminal, the primary's log and its console share the screen.)
    await primary.waitFor(/listening on 127\.0\.0\.1:\d+/, 30_000);
    backup = new ConsoleSession(['backup', '--connect', `127.0.0.1:${port}`, ...common]);
    const joined = await primary.waitFor(/backup joined at epoch \d+/, 30_000);
    await primary.waitFor(/line 0001 /, 30_000, joined);
    primary.type('\x01x');
    assert.equal(await primary.exit(30_000), 0, primary.tail());
    assert.match(primary.text, /understudy primary: quit \(Ctrl-A x\): this replica stops/);
    assert.doesNotMatch(primary.text, /pair_workload: PASS/, 'the guest was still running when the primary stopped');
    // The backup takes over, and the guest finishes there once the gate opens.
    await backup.waitForLog(/promoted: live from epoch \d+/, 60_000);
    backup.type('g');
    assert.equal(await backup.exit(60_000), 0, backup.tail());
    assert.match(backup.text, /pair_workload: PASS lines=\d+ disk=OK\n$/);
  } finally {
    primary.kill();
    backup?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
