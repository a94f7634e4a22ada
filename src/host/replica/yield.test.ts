import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { yieldToSockets } from './yield.js';

/**
 * A UNIX socket whose peer we write to: a write on a UNIX socket is in the peer's receive
 * queue when the write call returns, so "has the loop polled since?" is a question of event
 * order, not of time.
 */
async function socketPair(): Promise<{ ours: net.Socket; theirs: net.Socket; close: () => void }> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-yield-'));
  const socketPath = path.join(directory, 's');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const ours = net.connect(socketPath);
  await new Promise<void>((resolve) => ours.once('connect', resolve));
  const theirs = await accepted;
  return {
    ours,
    theirs,
    close: () => {
      ours.destroy();
      theirs.destroy();
      server.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}

test('a yield from an I/O callback polls the sockets before it resolves', async () => {
  const { ours, theirs, close } = await socketPair();
  try {
    let second = false;
    ours.on('data', (chunk: Buffer) => {
      if (chunk.includes(0x32)) second = true;
    });
    const outcome = await new Promise<{ plain: boolean; twice: boolean }>((resolve) => {
      ours.once('data', () => {
        // In the first chunk's I/O callback: the second chunk is written now, so it sits in
        // our receive queue from here on (a UNIX socket write is delivered as it returns).
        theirs.write('2');
        void (async () => {
          await setImmediate();
          const plain = second; // one setImmediate: the same turn, no poll in between
          await yieldToSockets(false);
          resolve({ plain, twice: second });
        })();
      });
      theirs.write('1');
    });
    assert.equal(outcome.plain, false, 'one setImmediate from an I/O callback does not poll (the reason for yieldToSockets)');
    assert.equal(outcome.twice, true);
  } finally {
    close();
  }
});

test('yieldToSockets(true) polls even when called from an I/O callback', async () => {
  const { ours, theirs, close } = await socketPair();
  try {
    let second = false;
    ours.on('data', (chunk: Buffer) => {
      if (chunk.includes(0x32)) second = true;
    });
    const seen = await new Promise<boolean>((resolve) => {
      ours.once('data', () => {
        theirs.write('2');
        void yieldToSockets(true).then(() => resolve(second));
      });
      theirs.write('1');
    });
    assert.equal(seen, true);
  } finally {
    close();
  }
});
