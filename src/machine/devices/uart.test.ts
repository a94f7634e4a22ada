/**
 * Unit tests for the 16550A UART model, checked against the datasheet's register behaviour
 * as QEMU's hw/char/serial.c models it (instant transmission, THRE interrupt rules).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MachineOutput, OutputSink } from '../environment.js';
import { SnapshotError, SnapshotReader, SnapshotWriter } from '../snapshot.js';
import type { InterruptLine } from './device.js';
import { Uart16550, uartFifoBytes } from './uart.js';

// Register offsets (reg-shift 0) and bits, spelled out here so a mistake in the module's own
// tables cannot hide behind them.
const RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const IER_RDI = 0x01, IER_THRI = 0x02, IER_RLSI = 0x04, IER_MSI = 0x08;
const IIR_NONE = 0x01, IIR_THRI = 0x02, IIR_RDI = 0x04, IIR_RLSI = 0x06, IIR_FIFO = 0xc0;
const FCR_ENABLE = 0x01, FCR_CLEAR_RX = 0x02;
const MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
const MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80;
const LCR_DLAB = 0x80;

/** Records every level driven onto the line. */
class FakeIrq implements InterruptLine {
  readonly levels: boolean[] = [];
  set(level: boolean): void {
    this.levels.push(level);
  }
  get level(): boolean {
    return this.levels.at(-1) ?? false;
  }
}

class ArraySink implements OutputSink {
  readonly outputs: MachineOutput[] = [];
  emit(output: MachineOutput): void {
    this.outputs.push(output);
  }
  get text(): string {
    const bytes: number[] = [];
    for (const output of this.outputs) if (output.kind === 'console-output') bytes.push(...output.bytes);
    return String.fromCharCode(...bytes);
  }
}

function rig(): { uart: Uart16550; irq: FakeIrq; sink: ArraySink } {
  const irq = new FakeIrq();
  const sink = new ArraySink();
  return { uart: new Uart16550({ irq, outputs: sink }), irq, sink };
}

const read = (uart: Uart16550, offset: number): number => uart.read(offset, 1);
const write = (uart: Uart16550, offset: number, value: number): void => uart.write(offset, 1, value);
/** The interrupt identification without the FIFO bits. */
const iirId = (uart: Uart16550): number => read(uart, IIR) & 0x0f;

test('uart: each THR write is one console-output byte, in order', () => {
  const { uart, sink } = rig();
  for (const char of 'hi!') write(uart, THR, char.charCodeAt(0));
  assert.equal(sink.outputs.length, 3);
  for (const output of sink.outputs) {
    assert.equal(output.kind, 'console-output');
    if (output.kind === 'console-output') assert.equal(output.bytes.length, 1);
  }
  assert.equal(sink.text, 'hi!');
});

test('uart: THR keeps only the low 8 bits of a wider value', () => {
  const { uart, sink } = rig();
  uart.write(THR, 4, 0x1234_5641);
  assert.equal(sink.text, 'A');
});

test('uart: LSR always has THRE and TEMT; DR only while data waits', () => {
  const { uart } = rig();
  assert.equal(read(uart, LSR), LSR_THRE | LSR_TEMT);
  write(uart, THR, 0x41);
  assert.equal(read(uart, LSR), LSR_THRE | LSR_TEMT, 'transmission is instant');
  uart.receive(Uint8Array.of(0x61));
  assert.equal(read(uart, LSR), LSR_THRE | LSR_TEMT | LSR_DR);
  assert.equal(read(uart, RBR), 0x61);
  assert.equal(read(uart, LSR), LSR_THRE | LSR_TEMT);
});

test('uart: inputRoom is 1 without the FIFO and 16 with it; more is a RangeError', () => {
  const { uart } = rig();
  assert.equal(uart.inputRoom, 1);
  assert.throws(() => uart.receive(Uint8Array.of(1, 2)), RangeError);
  uart.receive(Uint8Array.of(1));
  assert.equal(uart.inputRoom, 0);
  assert.throws(() => uart.receive(Uint8Array.of(2)), RangeError);
  uart.receive(new Uint8Array(0)); // an empty event always fits

  write(uart, FCR, FCR_ENABLE);
  assert.equal(uart.inputRoom, uartFifoBytes);
  assert.equal(uartFifoBytes, 16);
  assert.throws(() => uart.receive(new Uint8Array(17)), RangeError);
  uart.receive(new Uint8Array(10));
  assert.equal(uart.inputRoom, 6);
  assert.throws(() => uart.receive(new Uint8Array(7)), /room for 6 bytes, got 7/);
  uart.receive(new Uint8Array(6));
  assert.equal(uart.inputRoom, 0);
});

test('uart: a rejected receive changes nothing', () => {
  const { uart, irq } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, IER, IER_RDI);
  assert.throws(() => uart.receive(new Uint8Array(17)), RangeError);
  assert.equal(uart.inputRoom, 16);
  assert.equal(read(uart, LSR) & LSR_DR, 0);
  assert.equal(irq.level, false);
});

test('uart: RBR returns received bytes in order, then 0 when empty', () => {
  const { uart } = rig();
  write(uart, FCR, FCR_ENABLE);
  uart.receive(new TextEncoder().encode('abc'));
  uart.receive(new TextEncoder().encode('de'));
  const got = [0, 1, 2, 3, 4].map(() => read(uart, RBR));
  assert.equal(String.fromCharCode(...got), 'abcde');
  assert.equal(read(uart, RBR), 0);
  assert.equal(read(uart, LSR) & LSR_DR, 0);
  assert.equal(uart.inputRoom, 16);
});

test('uart: with no interrupt enabled IIR reads "none" and the line stays low', () => {
  const { uart, irq } = rig();
  uart.receive(Uint8Array.of(1));
  write(uart, THR, 0x41);
  assert.equal(read(uart, IIR), IIR_NONE);
  assert.deepEqual(irq.levels, []);
});

test('uart: received data raises RDI and the line; reading RBR lowers it', () => {
  const { uart, irq } = rig();
  write(uart, IER, IER_RDI);
  assert.deepEqual(irq.levels, []);
  uart.receive(Uint8Array.of(0x61));
  assert.equal(iirId(uart), IIR_RDI);
  assert.deepEqual(irq.levels, [true]);
  read(uart, RBR);
  assert.equal(iirId(uart), IIR_NONE);
  assert.deepEqual(irq.levels, [true, false]);
});

test('uart: the line changes only on transitions', () => {
  const { uart, irq } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, IER, IER_RDI);
  uart.receive(Uint8Array.of(1));
  uart.receive(Uint8Array.of(2));
  read(uart, RBR);
  assert.deepEqual(irq.levels, [true], 'still data: no new level');
  read(uart, RBR);
  assert.deepEqual(irq.levels, [true, false]);
  read(uart, RBR);
  read(uart, LSR);
  assert.deepEqual(irq.levels, [true, false]);
});

test('uart: disabling RDI in IER lowers the line; enabling it again raises it', () => {
  const { uart, irq } = rig();
  write(uart, IER, IER_RDI);
  uart.receive(Uint8Array.of(1));
  write(uart, IER, 0);
  assert.equal(irq.level, false);
  write(uart, IER, IER_RDI);
  assert.equal(irq.level, true);
});

test('uart: THRE interrupt is pending when THRI gets enabled', () => {
  const { uart, irq } = rig();
  write(uart, IER, IER_THRI);
  assert.equal(irq.level, true);
  assert.equal(iirId(uart), IIR_THRI, 'the first IIR read reports THRI');
  assert.equal(irq.level, false, 'reading IIR while THRI is the cause clears it');
  assert.equal(iirId(uart), IIR_NONE);
});

test('uart: THRE interrupt is pending again after each transmitted byte', () => {
  const { uart, irq, sink } = rig();
  write(uart, IER, IER_THRI);
  read(uart, IIR);
  assert.equal(irq.level, false);
  write(uart, THR, 0x41);
  assert.equal(sink.text, 'A');
  assert.equal(irq.level, true);
  assert.equal(iirId(uart), IIR_THRI);
  assert.equal(irq.level, false);
});

test('uart: rewriting IER with THRI already on does not re-arm the THRE interrupt', () => {
  const { uart, irq } = rig();
  write(uart, IER, IER_THRI);
  read(uart, IIR);
  write(uart, IER, IER_THRI | IER_RDI);
  assert.equal(irq.level, false);
  assert.equal(iirId(uart), IIR_NONE);
  // Toggling THRI off and on re-arms it (what Windows and Linux rely on).
  write(uart, IER, IER_RDI);
  write(uart, IER, IER_THRI | IER_RDI);
  assert.equal(iirId(uart), IIR_THRI);
});

test('uart: reading IIR does not clear THRE while a higher cause is reported', () => {
  const { uart, irq } = rig();
  write(uart, IER, IER_RDI | IER_THRI);
  uart.receive(Uint8Array.of(0x61));
  assert.equal(iirId(uart), IIR_RDI);
  assert.equal(iirId(uart), IIR_RDI);
  read(uart, RBR);
  assert.equal(irq.level, true, 'THRE is still pending under the data');
  assert.equal(iirId(uart), IIR_THRI);
  assert.equal(irq.level, false);
});

test('uart: a transmit with THRI masked raises nothing until THRI is enabled', () => {
  const { uart, irq } = rig();
  write(uart, THR, 0x41);
  assert.equal(irq.level, false);
  write(uart, IER, IER_THRI);
  assert.equal(irq.level, true);
});

test('uart: IIR priorities: RLSI > RDI > THRI; MSI never fires without modem deltas', () => {
  const { uart, irq } = rig();
  // An overrun needs two bytes in a one-byte receiver: use loopback with the FIFO off.
  write(uart, MCR, MCR_LOOP);
  write(uart, THR, 0x11);
  write(uart, THR, 0x22);
  write(uart, IER, IER_RLSI | IER_RDI | IER_THRI | IER_MSI);
  assert.equal(irq.level, true);
  assert.equal(iirId(uart), IIR_RLSI);
  assert.equal(iirId(uart), IIR_RLSI, 'reading IIR does not clear a line-status cause');
  const lsr = read(uart, LSR);
  assert.equal(lsr & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
  assert.equal(read(uart, LSR) & LSR_OE, 0, 'reading LSR clears OE');
  assert.equal(iirId(uart), IIR_RDI);
  assert.equal(read(uart, RBR), 0x22, 'without the FIFO the overrunning byte replaces the unread one');
  assert.equal(iirId(uart), IIR_THRI);
  assert.equal(iirId(uart), IIR_NONE, 'MSI: no delta bits, no interrupt');
  assert.equal(irq.level, false);
});

test('uart: overrun with the FIFO on keeps the FIFO contents', () => {
  const { uart } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, MCR, MCR_LOOP);
  for (let i = 0; i < 17; i++) write(uart, THR, i + 1);
  const lsr = read(uart, LSR);
  assert.equal(lsr & LSR_OE, LSR_OE);
  const got = Array.from({ length: 16 }, () => read(uart, RBR));
  assert.deepEqual(got, Array.from({ length: 16 }, (_, i) => i + 1));
  assert.equal(read(uart, LSR) & (LSR_DR | LSR_OE), 0);
});

test('uart: IIR reports the FIFO bits while the FIFO is on', () => {
  const { uart } = rig();
  assert.equal(read(uart, IIR), IIR_NONE);
  write(uart, FCR, FCR_ENABLE);
  assert.equal(read(uart, IIR), IIR_FIFO | IIR_NONE);
  write(uart, IER, IER_THRI);
  assert.equal(read(uart, IIR), IIR_FIFO | IIR_THRI);
  write(uart, FCR, 0);
  assert.equal(read(uart, IIR), IIR_NONE);
});

test('uart: FCR: switching the FIFO on or off clears the receiver; CLEAR_RX clears it', () => {
  const { uart, irq } = rig();
  write(uart, IER, IER_RDI);
  uart.receive(Uint8Array.of(1));
  assert.equal(irq.level, true);
  write(uart, FCR, FCR_ENABLE);
  assert.equal(read(uart, LSR) & LSR_DR, 0, 'enabling clears');
  assert.equal(irq.level, false);

  uart.receive(Uint8Array.of(1, 2, 3));
  write(uart, FCR, FCR_ENABLE);
  assert.equal(read(uart, LSR) & LSR_DR, LSR_DR, 'rewriting the same mode keeps the data');
  write(uart, FCR, FCR_ENABLE | FCR_CLEAR_RX);
  assert.equal(read(uart, LSR) & LSR_DR, 0);
  assert.equal(uart.inputRoom, 16);

  uart.receive(Uint8Array.of(1, 2, 3));
  write(uart, FCR, 0);
  assert.equal(read(uart, LSR) & LSR_DR, 0, 'disabling clears');
  assert.equal(uart.inputRoom, 1);
});

test('uart: DLAB gives DLL/DLM at offsets 0/1 without touching THR, RBR or IER', () => {
  const { uart, irq, sink } = rig();
  uart.receive(Uint8Array.of(0x61));
  write(uart, IER, IER_RDI);
  const lines = irq.levels.length;
  write(uart, LCR, LCR_DLAB | 0x03);
  assert.equal(read(uart, LCR), LCR_DLAB | 0x03);
  write(uart, DLL, 0x0c);
  write(uart, DLM, 0x01);
  assert.equal(read(uart, DLL), 0x0c);
  assert.equal(read(uart, DLM), 0x01);
  assert.equal(sink.outputs.length, 0, 'no byte transmitted');
  assert.equal(irq.levels.length, lines, 'no interrupt change');
  write(uart, LCR, 0x03);
  assert.equal(read(uart, IER), IER_RDI, 'IER unchanged');
  assert.equal(read(uart, RBR), 0x61, 'the received byte is still there');
  write(uart, LCR, LCR_DLAB);
  assert.equal(read(uart, DLL), 0x0c, 'divisor kept');
  assert.equal(read(uart, DLM), 0x01);
});

test('uart: loopback sends THR to the receiver, not to the console', () => {
  const { uart, irq, sink } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, IER, IER_RDI);
  write(uart, MCR, MCR_LOOP);
  for (const char of 'loop') write(uart, THR, char.charCodeAt(0));
  assert.equal(sink.outputs.length, 0);
  assert.equal(irq.level, true);
  assert.equal(read(uart, LSR) & LSR_DR, LSR_DR);
  const got = [0, 1, 2, 3].map(() => read(uart, RBR));
  assert.equal(String.fromCharCode(...got), 'loop');
  write(uart, MCR, 0);
  write(uart, THR, 0x41);
  assert.equal(sink.text, 'A');
  assert.equal(read(uart, LSR) & LSR_DR, 0);
});

test('uart: in loopback the console cannot deliver input, so typed bytes are not lost', () => {
  const { uart } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, MCR, MCR_LOOP);
  assert.equal(uart.inputRoom, 0);
  assert.throws(() => uart.receive(Uint8Array.of(0x61)), RangeError);
  write(uart, MCR, 0);
  assert.equal(uart.inputRoom, 16);
});

test('uart: MSR reflects MCR in loopback, and the idle modem lines otherwise', () => {
  const { uart } = rig();
  assert.equal(read(uart, MSR), MSR_DCD | MSR_DSR | MSR_CTS);
  write(uart, MCR, MCR_LOOP);
  assert.equal(read(uart, MSR), 0);
  write(uart, MCR, MCR_LOOP | MCR_RTS);
  assert.equal(read(uart, MSR), MSR_CTS);
  write(uart, MCR, MCR_LOOP | MCR_DTR);
  assert.equal(read(uart, MSR), MSR_DSR);
  write(uart, MCR, MCR_LOOP | MCR_OUT1);
  assert.equal(read(uart, MSR), MSR_RI);
  write(uart, MCR, MCR_LOOP | MCR_OUT2);
  assert.equal(read(uart, MSR), MSR_DCD);
  write(uart, MCR, 0xff);
  assert.equal(read(uart, MCR), 0x1f, 'MCR keeps its five defined bits');
  assert.equal(read(uart, MSR), MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD);
  write(uart, MCR, 0);
  assert.equal(read(uart, MSR), MSR_DCD | MSR_DSR | MSR_CTS);
});

test('uart: SCR stores a byte; LSR and MSR ignore writes; IER keeps four bits', () => {
  const { uart } = rig();
  write(uart, SCR, 0x1a5);
  assert.equal(read(uart, SCR), 0xa5);
  write(uart, LSR, 0);
  write(uart, MSR, 0);
  assert.equal(read(uart, LSR), LSR_THRE | LSR_TEMT);
  assert.equal(read(uart, MSR), MSR_DCD | MSR_DSR | MSR_CTS);
  write(uart, IER, 0xf0);
  assert.equal(read(uart, IER), 0);
});

test('uart: offsets past the eight registers read 0 and ignore writes', () => {
  const { uart, sink, irq } = rig();
  for (const offset of [8, 9, 0x10, 0xff]) {
    uart.write(offset, 1, 0x41);
    assert.equal(uart.read(offset, 1), 0);
  }
  assert.equal(sink.outputs.length, 0);
  assert.deepEqual(irq.levels, []);
});

test('uart: save/restore round trip gives equal state and re-drives the line', () => {
  const { uart } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, LCR, LCR_DLAB);
  write(uart, DLL, 0x0c);
  write(uart, DLM, 0x02);
  write(uart, LCR, 0x03);
  write(uart, SCR, 0x5a);
  write(uart, IER, IER_RDI | IER_THRI);
  write(uart, MCR, MCR_OUT2 | MCR_RTS);
  uart.receive(Uint8Array.of(7, 8, 9));
  const saved = new SnapshotWriter();
  uart.save(saved);
  const bytes = saved.finish();

  const copy = rig();
  copy.uart.restore(new SnapshotReader(bytes));
  assert.deepEqual(copy.irq.levels, [true], 'the restored line level is driven');
  const again = new SnapshotWriter();
  copy.uart.save(again);
  assert.deepEqual(again.finish(), bytes);

  // Same behaviour from here on.
  for (const target of [uart, copy.uart]) {
    write(target, LCR, LCR_DLAB);
    assert.equal(read(target, DLL), 0x0c);
    assert.equal(read(target, DLM), 0x02);
    write(target, LCR, 0x03);
  }
  assert.deepEqual([0, 1, 2].map(() => read(copy.uart, RBR)), [7, 8, 9]);
  assert.equal(iirId(copy.uart), IIR_THRI);
  assert.equal(copy.uart.inputRoom, 16);
});

test('uart: restore drives a low line too', () => {
  const { uart } = rig();
  const saved = new SnapshotWriter();
  uart.save(saved);
  const copy = rig();
  write(copy.uart, IER, IER_THRI);
  assert.equal(copy.irq.level, true);
  copy.uart.restore(new SnapshotReader(saved.finish()));
  assert.equal(copy.irq.level, false);
});

test('uart: restore rejects a receiver holding more than it can', () => {
  const forge = (fifo: boolean, rxBytes: number): Uint8Array => {
    const writer = new SnapshotWriter().section('uart');
    for (let i = 0; i < 8; i++) writer.u8(0);
    return writer.bool(fifo).bool(false).bool(false).bytes(new Uint8Array(rxBytes)).finish();
  };
  const { uart } = rig();
  uart.restore(new SnapshotReader(forge(true, 16)));
  assert.throws(() => rig().uart.restore(new SnapshotReader(forge(true, 17))), SnapshotError);
  assert.throws(() => rig().uart.restore(new SnapshotReader(forge(false, 2))), SnapshotError);
  assert.throws(() => rig().uart.restore(new SnapshotReader(new SnapshotWriter().section('plic').finish())), SnapshotError);
});

test('uart: takeInputByte (SBI console_getchar) takes bytes in order, then -1', () => {
  const { uart, irq } = rig();
  write(uart, FCR, FCR_ENABLE);
  write(uart, IER, IER_RDI);
  uart.receive(Uint8Array.of(0x61, 0x62));
  assert.equal(irq.level, true);
  assert.equal(uart.takeInputByte(), 0x61);
  assert.equal(irq.level, true);
  assert.equal(uart.takeInputByte(), 0x62);
  assert.equal(irq.level, false, 'taking the last byte lowers the line');
  assert.equal(read(uart, LSR) & LSR_DR, 0);
  assert.equal(uart.takeInputByte(), -1);
  assert.equal(uart.inputRoom, 16);
});
