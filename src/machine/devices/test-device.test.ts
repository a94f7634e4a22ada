/**
 * Unit tests for the sifive,test0 exit device: 0x5555 passes, (code << 16) | 0x3333 fails with
 * `code`, 0x7777 resets; anything else is ignored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotError, SnapshotReader, SnapshotWriter } from '../snapshot.js';
import type { MmioDevice } from './device.js';
import { TestDevice, type PowerRequest } from './test-device.js';

function rig(): { device: TestDevice; requests: PowerRequest[] } {
  const requests: PowerRequest[] = [];
  return { device: new TestDevice((request) => requests.push(request)), requests };
}

test('test device: 0x5555 powers off with status 0', () => {
  const { device, requests } = rig();
  device.write(0, 4, 0x5555);
  assert.deepEqual(requests, [{ kind: 'poweroff', status: 0 }]);
});

test('test device: the upper half of a pass is ignored', () => {
  const { device, requests } = rig();
  device.write(0, 4, 0x0007_5555);
  assert.deepEqual(requests, [{ kind: 'poweroff', status: 0 }]);
});

test('test device: (code << 16) | 0x3333 powers off with that code', () => {
  for (const code of [0, 1, 7, 255, 256, 0xffff]) {
    const { device, requests } = rig();
    device.write(0, 4, ((code << 16) | 0x3333) >>> 0);
    assert.deepEqual(requests, [{ kind: 'poweroff', status: code }], `code ${code}`);
  }
});

test('test device: a negative int32 value is read as unsigned', () => {
  const { device, requests } = rig();
  device.write(0, 4, 0xffff_3333 | 0);
  assert.deepEqual(requests, [{ kind: 'poweroff', status: 0xffff }]);
});

test('test device: 0x7777 resets', () => {
  const { device, requests } = rig();
  device.write(0, 4, 0x7777);
  assert.deepEqual(requests, [{ kind: 'reset' }]);
});

test('test device: other values are ignored', () => {
  const { device, requests } = rig();
  for (const value of [0, 1, 0x3332, 0x3334, 0x5554, 0x5556, 0x7776, 0x7778, 0x1_0000, 0xffff_ffff, 0x5555_0000, 0x3333_0000]) {
    device.write(0, 4, value);
  }
  assert.deepEqual(requests, []);
});

test('test device: other offsets and byte writes are ignored', () => {
  const { device, requests } = rig();
  for (const offset of [4, 8, 0x100, 0xffc]) device.write(offset, 4, 0x5555);
  device.write(0, 1, 0x55);
  assert.deepEqual(requests, []);
});

test('test device: 16-bit writes act as on QEMU (min_access_size 2), with failure code 0', () => {
  const { device, requests } = rig();
  device.write(0, 2, 0x5555);
  device.write(0, 2, 0x3333);
  device.write(0, 2, 0x7777);
  assert.deepEqual(requests, [{ kind: 'poweroff', status: 0 }, { kind: 'poweroff', status: 0 }, { kind: 'reset' }]);
});

test('test device: reads return 0', () => {
  const { device, requests } = rig();
  const mmio: MmioDevice = device;
  for (const [offset, width] of [[0, 4], [0, 2], [0, 1], [4, 4]] as const) assert.equal(mmio.read(offset, width), 0);
  assert.deepEqual(requests, []);
});

test('test device: save/restore checks its section', () => {
  const { device } = rig();
  const saved = new SnapshotWriter();
  device.save(saved);
  const reader = new SnapshotReader(saved.finish());
  rig().device.restore(reader);
  reader.expectEnd();
  assert.throws(() => device.restore(new SnapshotReader(new SnapshotWriter().section('rtc').finish())), SnapshotError);
});
