/**
 * NS16550A UART, as QEMU's virt board has it (reg-shift 0, 8-bit registers, IRQ 10).
 *
 * Transmission is instant: every byte written to THR becomes console output, so THRE and TEMT
 * are always set and the THR-empty interrupt follows QEMU's rules (pending after each
 * transmitted byte and when the interrupt is enabled; cleared by reading IIR while it is the
 * reported cause). Received bytes arrive only through console-input events, at most
 * {@link Uart16550.inputRoom} at a time, so nothing typed is ever dropped by the model.
 */
import type { InterruptLine, MmioDevice, AccessWidth } from './device.js';
import type { OutputSink } from '../environment.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';

/** Receive FIFO depth of a 16550A. */
export const uartFifoBytes = 16;

const Reg = { RBR_THR_DLL: 0, IER_DLM: 1, IIR_FCR: 2, LCR: 3, MCR: 4, LSR: 5, MSR: 6, SCR: 7 } as const;
const Lsr = { DR: 0x01, OE: 0x02, THRE: 0x20, TEMT: 0x40 } as const;
const Ier = { RDI: 0x01, THRI: 0x02, RLSI: 0x04, MSI: 0x08 } as const;
const Iir = { NONE: 0x01, MSI: 0x00, THRI: 0x02, RDI: 0x04, RLSI: 0x06, FIFO_ENABLED: 0xc0 } as const;
const Fcr = { ENABLE: 0x01, CLEAR_RX: 0x02 } as const;
const Mcr = { DTR: 0x01, RTS: 0x02, OUT1: 0x04, OUT2: 0x08, LOOP: 0x10 } as const;
const Msr = { DCTS: 0x01, DDSR: 0x02, TERI: 0x04, DDCD: 0x08, CTS: 0x10, DSR: 0x20, RI: 0x40, DCD: 0x80 } as const;
const LCR_DLAB = 0x80;

export class Uart16550 implements MmioDevice {
  readonly name = 'uart0';
  readonly windowBytes = 0x100;

  private ier = 0;
  private lcr = 0;
  /** QEMU's reset values: OUT2 set, divisor 12 (9600 baud from the 1.8432 MHz reference). */
  private mcr: number = Mcr.OUT2;
  private lsrErrors = 0;
  private msr = Msr.DCD | Msr.DSR | Msr.CTS;
  private scr = 0;
  private dll = 0x0c;
  private dlm = 0;
  private fifoEnabled = false;
  private threEmptyPending = false;
  private rx: number[] = [];
  private lineLevel = false;

  constructor(private readonly deps: { irq: InterruptLine; outputs: OutputSink }) {}

  /**
   * How many console bytes the receiver can take now. None in loopback, where the receiver
   * hears only the transmitter: typed bytes wait with the caller instead of being lost.
   */
  get inputRoom(): number {
    if ((this.mcr & Mcr.LOOP) !== 0) return 0;
    return (this.fifoEnabled ? uartFifoBytes : 1) - this.rx.length;
  }

  /** Console input (an event): at most `inputRoom` bytes; the caller keeps the rest. */
  receive(bytes: Uint8Array): void {
    if (bytes.length > this.inputRoom) throw new RangeError(`UART receiver has room for ${this.inputRoom} bytes, got ${bytes.length}`);
    for (const byte of bytes) this.rx.push(byte);
    this.update();
  }

  /** Takes one received byte, or -1 (the SBI firmware's legacy console_getchar). */
  takeInputByte(): number {
    const byte = this.rx.shift();
    if (byte === undefined) return -1;
    this.update();
    return byte;
  }

  read(offset: number, _width: AccessWidth): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case Reg.RBR_THR_DLL: {
        if (dlab) return this.dll;
        const byte = this.rx.shift() ?? 0;
        this.update();
        return byte;
      }
      case Reg.IER_DLM:
        return dlab ? this.dlm : this.ier;
      case Reg.IIR_FCR: {
        const iir = this.interruptIdentification();
        if (iir === Iir.THRI) {
          this.threEmptyPending = false;
          this.update();
        }
        return iir | (this.fifoEnabled ? Iir.FIFO_ENABLED : 0);
      }
      case Reg.LCR:
        return this.lcr;
      case Reg.MCR:
        return this.mcr;
      case Reg.LSR: {
        const lsr = Lsr.THRE | Lsr.TEMT | this.lsrErrors | (this.rx.length > 0 ? Lsr.DR : 0);
        this.lsrErrors = 0;
        this.update();
        return lsr;
      }
      case Reg.MSR: {
        const msr = this.modemStatus();
        this.msr &= ~(Msr.DCTS | Msr.DDSR | Msr.TERI | Msr.DDCD);
        this.update();
        return msr;
      }
      case Reg.SCR:
        return this.scr;
      default:
        return 0;
    }
  }

  write(offset: number, _width: AccessWidth, value: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    value &= 0xff;
    switch (offset) {
      case Reg.RBR_THR_DLL:
        if (dlab) {
          this.dll = value;
          return;
        }
        this.transmit(value);
        break;
      case Reg.IER_DLM:
        if (dlab) {
          this.dlm = value;
          return;
        }
        if ((value & Ier.THRI) !== 0 && (this.ier & Ier.THRI) === 0) this.threEmptyPending = true;
        this.ier = value & 0x0f;
        break;
      case Reg.IIR_FCR:
      {
        // Turning the FIFOs on or off clears them, as on the 16550A.
        const enable = (value & Fcr.ENABLE) !== 0;
        if (enable !== this.fifoEnabled || (value & Fcr.CLEAR_RX) !== 0) this.rx.length = 0;
        this.fifoEnabled = enable;
        break;
      }
      case Reg.LCR:
        this.lcr = value;
        return;
      case Reg.MCR:
        this.mcr = value & 0x1f;
        break;
      case Reg.SCR:
        this.scr = value;
        return;
      default:
        return; // LSR and MSR are read-only
    }
    this.update();
  }

  private transmit(byte: number): void {
    if ((this.mcr & Mcr.LOOP) !== 0) {
      if (this.rx.length < (this.fifoEnabled ? uartFifoBytes : 1)) {
        this.rx.push(byte);
      } else {
        // Overrun: a full FIFO keeps its contents; without the FIFO the new character
        // overwrites the unread one in RBR (16550A datasheet, LSR bit 1; QEMU does the same).
        this.lsrErrors |= Lsr.OE;
        if (!this.fifoEnabled) this.rx[0] = byte;
      }
    } else {
      this.deps.outputs.emit({ kind: 'console-output', bytes: Uint8Array.of(byte) });
    }
    this.threEmptyPending = true;
  }

  private modemStatus(): number {
    if ((this.mcr & Mcr.LOOP) === 0) return this.msr;
    // Loopback: the modem inputs follow the modem control outputs.
    let msr = this.msr & 0x0f;
    if (this.mcr & Mcr.RTS) msr |= Msr.CTS;
    if (this.mcr & Mcr.DTR) msr |= Msr.DSR;
    if (this.mcr & Mcr.OUT1) msr |= Msr.RI;
    if (this.mcr & Mcr.OUT2) msr |= Msr.DCD;
    return msr;
  }

  private interruptIdentification(): number {
    if ((this.ier & Ier.RLSI) !== 0 && this.lsrErrors !== 0) return Iir.RLSI;
    if ((this.ier & Ier.RDI) !== 0 && this.rx.length > 0) return Iir.RDI;
    if ((this.ier & Ier.THRI) !== 0 && this.threEmptyPending) return Iir.THRI;
    if ((this.ier & Ier.MSI) !== 0 && (this.modemStatus() & 0x0f) !== 0) return Iir.MSI;
    return Iir.NONE;
  }

  private update(): void {
    const level = this.interruptIdentification() !== Iir.NONE;
    if (level !== this.lineLevel) {
      this.lineLevel = level;
      this.deps.irq.set(level);
    }
  }

  save(writer: SnapshotWriter): void {
    writer.section('uart');
    for (const value of [this.ier, this.lcr, this.mcr, this.lsrErrors, this.msr, this.scr, this.dll, this.dlm]) writer.u8(value);
    writer.bool(this.fifoEnabled).bool(this.threEmptyPending).bool(this.lineLevel).bytes(Uint8Array.from(this.rx));
  }

  restore(reader: SnapshotReader): void {
    reader.section('uart');
    this.ier = reader.u8();
    this.lcr = reader.u8();
    this.mcr = reader.u8();
    this.lsrErrors = reader.u8();
    this.msr = reader.u8();
    this.scr = reader.u8();
    this.dll = reader.u8();
    this.dlm = reader.u8();
    this.fifoEnabled = reader.bool();
    this.threEmptyPending = reader.bool();
    this.lineLevel = reader.bool();
    const rx = reader.bytes();
    const capacity = this.fifoEnabled ? uartFifoBytes : 1;
    if (rx.length > capacity) throw new SnapshotError(`UART receiver holds ${rx.length} bytes, more than its ${capacity}`);
    this.rx = Array.from(rx);
    this.deps.irq.set(this.lineLevel);
  }
}
