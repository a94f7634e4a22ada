/** Unit tests for the status view's text: durations, lag and a live copy's progress. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatStatus } from './status.js';

test('formatDuration: milliseconds, seconds, minutes, hours', () => {
  assert.equal(formatDuration(850), '850 ms');
  assert.equal(formatDuration(12_345), '12.3 s');
  assert.equal(formatDuration(245_000), '4 min 05 s');
  assert.equal(formatDuration(7_380_000), '2 h 03 min');
});

test('formatStatus: a primary copying its state to a joining backup says how far it is, and its lag in time', () => {
  const primary = { role: 'solo', epoch: 9, lagEpochs: 0, lagMs: 0, logBytesPerSecond: 2048, outputsWaiting: 0, generation: 2, pid: 7, joining: { round: 2, pagesSent: 300, bytesSent: 3 * 1048576, ms: 120 } };
  const text = formatStatus({ protected: false, reason: 'a backup is joining (live copy: round 2, 3.0 MiB sent in 120 ms)', primary, backup: null, failover: null, failovers: 0 });
  assert.match(text, /^Not protected: a backup is joining \(live copy: round 2, 3\.0 MiB sent in 120 ms\)$/m);
  assert.match(text, /^primary +pid 7: solo, epoch 9, lag 0 epochs \(0 ms\), log 2\.0 KiB\/s/m);
  assert.match(text, /a backup is joining: live copy round 2, 300 pages \(3\.0 MiB\) sent in 120 ms/);
  assert.match(text, /^backup: no report yet$/m);
});

test('formatStatus: a primary slowing its guest for a lagging backup says so', () => {
  const primary = { role: 'primary', epoch: 90, lagEpochs: 3, lagMs: 40, logBytesPerSecond: 0, outputsWaiting: 2, generation: 1, pid: 8, slowedMs: 12 };
  assert.match(formatStatus({ protected: true, primary, backup: null, failover: null, failovers: 0 }), /slowed while the backup catches up: the guest pauses 12 ms after each epoch/);
  assert.doesNotMatch(formatStatus({ protected: true, primary: { ...primary, slowedMs: 0 }, backup: null, failover: null, failovers: 0 }), /slowed/);
});
