/**
 * A pair's console behind a reader that lags or goes away. A guest that prints without end
 * must wait for a slow reader (its primary pauses the guest, not the protocol: no failover),
 * go on when the reader catches up, and a reader that goes away ends the pair with status
 * 141, as SIGPIPE would, without a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { asm, assemble, li } from '../src/machine/cpu/encode.js';
import { cliPath, repoRoot } from './helpers.js';
import { consoleBacklogMaxBytes } from '../src/host/runner.js';
import { freePort, scratchDirectory } from './support/replica-processes.js';

interface Status {
  primary?: { role: string; epoch: number; uptimeMs: number; consoleBacklogBytes: number };
  backup?: { role: string; epoch: number };
  failover?: unknown;
}

function pairStatus(port: number): Promise<Status> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/status', timeout: 2000 }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve(JSON.parse(text) as Status));
      })
      .on('error', reject);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls the pair's status (a generous deadline, never a fixed wait) until `done` holds; returns that view. */
async function statusWhen(port: number, what: string, done: (status: Status) => boolean): Promise<Status> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const status = await pairStatus(port);
    if (done(status)) return status;
    assert.ok(performance.now() < deadline, `timed out waiting until ${what}: ${JSON.stringify(status)}`);
    await sleep(50);
  }
}

test('pair: a lagging console reader pauses the guest but not the protocol; one that goes away ends the pair (141)', { timeout: 120_000 }, async () => {
  const directory = scratchDirectory('pair-console');
  // 'A' to the UART without end.
  const program = [...li(5, 0x1000_0000), asm.addi(6, 0, 0x41), asm.sb(6, 5, 0), asm.jal(0, -4)];
  const image = path.join(directory, 'spam.bin');
  fs.writeFileSync(image, assemble(program));
  const statusPort = await freePort();
  const child = spawn(process.execPath, [cliPath, 'pair', '--kernel', image, '--status-port', String(statusPort)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let received = 0;
    child.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
    const deadline = Date.now() + 30_000;
    while (received < 200_000) {
      assert.ok(Date.now() < deadline, `the pair printed only ${received} bytes:\n${stderr}`);
      await sleep(50);
    }

    // The reader stops reading: once the primary's console backlog is past its limit, its
    // epochs stop; three reports later (each replica reports every 250 ms) they still have.
    child.stdout.pause();
    const backlogged = (status: Status): boolean => (status.primary?.consoleBacklogBytes ?? 0) > consoleBacklogMaxBytes;
    let before = await statusWhen(statusPort, 'the console backlog is full', backlogged);
    before = await statusWhen(statusPort, 'the next report', (status) => status.primary !== undefined && status.primary.uptimeMs > before.primary!.uptimeMs);
    let after = before;
    for (let report = 0; report < 3; report++) {
      const previous = after;
      after = await statusWhen(statusPort, 'the next report', (status) => status.primary !== undefined && status.primary.uptimeMs > previous.primary!.uptimeMs);
    }
    assert.ok(backlogged(after), JSON.stringify(after));
    assert.equal(after.primary?.role, 'primary', JSON.stringify(after));
    assert.equal(after.backup?.role, 'backup', `the backup still follows: no failover\n${JSON.stringify(after)}\n${stderr}`);
    assert.equal(after.failover ?? null, null, 'no failover');
    assert.equal(after.primary?.epoch, before.primary?.epoch, 'the guest waited for the reader');

    // The reader catches up: the guest goes on.
    child.stdout.resume();
    const resumed = await statusWhen(statusPort, 'the guest goes on', (status) => (status.primary?.epoch ?? 0) > (after.primary?.epoch ?? 0));
    assert.equal(resumed.failover ?? null, null, 'no failover');

    // The reader goes away.
    child.stdout.destroy();
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    assert.equal(status, 141, stderr);
    assert.match(stderr, /understudy: the console's output was closed/);
    assert.doesNotMatch(stderr, /the primary failed/);
    assert.ok(!/^\s+at /m.test(stderr), stderr);
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
