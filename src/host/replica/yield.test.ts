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

/**
 * Runs `action` in the I/O callback of a first chunk, just after a second chunk was written to
 * us (so it sits in our receive queue from then on: a UNIX socket write is delivered as it
 * returns); `secondRead()` says whether the event loop has read it since.
 */
async function inFirstChunkCallback<T>(action: (secondRead: () => boolean) => Promise<T>): Promise<T> {
  const { ours, theirs, close } = await socketPair();
  try {
    let second = false;
    ours.on('data', (chunk: Buffer) => {
      if (chunk.includes(0x32)) second = true;
    });
    return await new Promise<T>((resolve, reject) => {
      ours.once('data', () => {
        theirs.write('2');
        action(() => second).then(resolve, reject);
      });
      theirs.write('1');
    });
  } finally {
    close();
  }
}

test('one setImmediate from an I/O callback does not poll the sockets (why yieldToSockets exists); the next one does', async () => {
  const seen = await inFirstChunkCallback(async (secondRead) => {
    await setImmediate();
    const afterOne = secondRead(); // the same turn of the event loop: no poll in between
    await yieldToSockets(false); // from the check phase: the next turn polls first
    return { afterOne, afterYield: secondRead() };
  });
  assert.deepEqual(seen, { afterOne: false, afterYield: true });
});

test('yieldToSockets(true) polls the sockets even when called from an I/O callback', async () => {
  const seen = await inFirstChunkCallback(async (secondRead) => {
    await yieldToSockets(true);
    return secondRead();
  });
  assert.equal(seen, true);
});
